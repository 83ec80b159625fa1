"""Service-to-service calls: the `/internal` endpoints accept only the shared service key."""

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from shared.errors import forbidden

SERVICE_KEY_HEADER = "X-Service-Key"


async def require_service_key(
    request: Request,
    x_service_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    expected: str = request.app.state.settings.service_api_key.get_secret_value()
    if x_service_key is None or not hmac.compare_digest(x_service_key.encode(), expected.encode()):
        raise forbidden("This endpoint is for the stack's own services.")


InternalCaller = Depends(require_service_key)

