"""A downstream service's answer passed on to the gateway's client."""

import httpx
from fastapi import Response

RELAYED_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed", "x-next-cursor")


def relay(response: httpx.Response) -> Response:
    headers = {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}
    status = response.status_code
    if status >= 500 and status not in (503, 504):
        status = 503  # a downstream's crash reaches the client as "unavailable, retry", never as a 500
        headers.setdefault("retry-after", "1")
    return Response(response.content, status_code=status, headers=headers)
