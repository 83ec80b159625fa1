"""Calls from the gateway to one service, with failures mapped to what a client can act on:
refused connection -> 503, no answer in time -> 504 (both with Retry-After)."""

from dataclasses import dataclass

import httpx
from fastapi import Response

from shared.errors import timed_out, unavailable
from shared.internal import SERVICE_KEY_HEADER
from shared.service import REQUEST_ID_HEADER, request_id_var

RELAYED_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed", "x-next-cursor")


@dataclass
class Downstream:
    name: str
    base_url: str
    http: httpx.AsyncClient
    service_key: str

    async def call(self, method: str, path: str, *, internal: bool = False, headers: dict | None = None, **kwargs):
        headers = {**(headers or {}), REQUEST_ID_HEADER: request_id_var.get()}
        if internal:
            headers[SERVICE_KEY_HEADER] = self.service_key
        try:
            return await self.http.request(method, self.base_url + path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise timed_out(f"The {self.name} service") from None
        except httpx.TransportError:
            raise unavailable(f"The {self.name} service") from None


def relay(response: httpx.Response) -> Response:
    """The downstream's answer, as it was, to the client."""
    headers = {name: response.headers[name] for name in RELAYED_HEADERS if name in response.headers}
    status = response.status_code
    if status >= 500 and status not in (503, 504):
        status = 503  # a downstream's crash reaches the client as "unavailable, retry", never as a 500
        headers.setdefault("retry-after", "1")
    return Response(response.content, status_code=status, headers=headers)
