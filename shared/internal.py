"""Service-to-service calls: the `/internal` endpoints accept only the shared service key."""

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from shared.errors import forbidden
from shared.hotpath import HotRequest

SERVICE_KEY_HEADER = "X-Service-Key"
NOT_A_SERVICE = "This endpoint is for the stack's own services."


def is_service_key(app, presented: str | None) -> bool:
    expected: str = app.state.settings.service_api_key.get_secret_value()
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


async def require_service_key(
    request: Request,
    x_service_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    if not is_service_key(request.app, x_service_key):
        raise forbidden(NOT_A_SERVICE)


InternalCaller = Depends(require_service_key)


def require_hot_service_key(request: HotRequest) -> None:
    """The same check for a hot handler, made before anything else of the request is looked at."""
    if not is_service_key(request.app, request.header(b"x-service-key")):
        raise forbidden(NOT_A_SERVICE)
