"""The `Idempotency-Key` header: the same key with the same request has one effect."""

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException

from shared.hotpath import HotRequest

IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


async def idempotency_key(  # async: FastAPI would run a plain def on a worker thread
    key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Repeat a request safely: same key, same body, one effect."),
    ] = None,
) -> str | None:
    if key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise HTTPException(422, detail="Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.")
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
INVALID_KEY = object()


def hot_idempotency_key(request: HotRequest) -> str | None | object:
    """The header for a hot handler: the key, None when absent, or INVALID_KEY (the route's
    FastAPI endpoint then answers 422)."""
    key = request.header(b"idempotency-key")
    return INVALID_KEY if key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(key) else key
