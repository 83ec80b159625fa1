"""Calls from one service to another, over one or more replicas' base URLs.

Requests rotate over the replicas; a replica that refuses the connection is skipped (nothing was
sent, so another may take it). Failures are mapped to what a client can act on: no replica
reachable -> 503, no answer in time -> 504 (both with Retry-After). A request that reached a
replica is never re-sent elsewhere: its outcome is unknown, and the idempotency key makes the
client's retry safe."""

import itertools

import httpx

from shared.clients import http_client
from shared.errors import timed_out, unavailable
from shared.internal import SERVICE_KEY_HEADER
from shared.requestid import REQUEST_ID_HEADER, request_id_var
from shared.settings import ServiceSettings


class Downstream:
    def __init__(self, name: str, base_urls: str, settings: ServiceSettings) -> None:
        self.name = name
        self.urls = [url.strip().rstrip("/") for url in base_urls.split(",") if url.strip()]
        if not self.urls:
            raise ValueError(f"no URL for the {name} service")
        # A pool of its own: httpx scans every pooled connection on each request, so small
        # per-service pools cost far less CPU than one large shared one.
        self.http = http_client(settings)
        self.service_key = settings.service_api_key.get_secret_value()
        self._turns = itertools.cycle(range(len(self.urls)))

    async def call(
        self, method: str, path: str, *, internal: bool = False, headers: dict | None = None, **kwargs
    ) -> httpx.Response:
        headers = {**(headers or {}), REQUEST_ID_HEADER: request_id_var.get()}
        if internal:
            headers[SERVICE_KEY_HEADER] = self.service_key
        first = next(self._turns)
        for turn in range(len(self.urls)):
            url = self.urls[(first + turn) % len(self.urls)]
            try:
                return await self.http.request(method, url + path, headers=headers, **kwargs)
            except httpx.ConnectError:
                continue
            except httpx.TimeoutException:
                raise timed_out(f"The {self.name} service") from None
            except httpx.TransportError:
                raise unavailable(f"The {self.name} service") from None
        raise unavailable(f"The {self.name} service")

    async def aclose(self) -> None:
        await self.http.aclose()
