"""A downstream service's answer passed on to the gateway's client."""

from fastapi import Response
from fastapi.responses import JSONResponse

from shared.httpclient import Answer

RELAYED_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed", "x-next-cursor")


def relay(response: Answer) -> Response:
    headers = {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}
    status = response.status_code
    if status >= 500 and status not in (503, 504):
        # A downstream that failed on this request: the gateway never answers 500 itself.
        return JSONResponse({"detail": "A downstream service failed on this request."}, status_code=502)
    return Response(response.content, status_code=status, headers=headers)
