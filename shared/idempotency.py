"""The `Idempotency-Key` header: the same key with the same request has one effect."""

import re
from typing import Annotated

from fastapi import Depends, Header, HTTPException

IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


def idempotency_key(
    key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Repeat a request safely: same key, same body, one effect."),
    ] = None,
) -> str | None:
    if key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise HTTPException(422, detail="Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.")
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
