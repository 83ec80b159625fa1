"""Calls from one service to another, over one or more replicas' base URLs.

Requests rotate over the replicas; a replica that refuses the connection is skipped (nothing was
sent, so another may take it). Failures are mapped to what a client can act on: no replica
reachable or a connection lost mid-call -> 503, no answer in time -> 504 (both with Retry-After).
A request that reached a replica is never re-sent elsewhere: its outcome is unknown, and the
idempotency key makes the client's retry safe."""

import itertools
import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson

from shared.errors import timed_out, unavailable
from shared.httpclient import Answer, ConnectFailed, ConnectionLost, ServiceClient
from shared.internal import SERVICE_KEY_HEADER
from shared.requestid import REQUEST_ID_HEADER, request_id_var
from shared.settings import ServiceSettings


class Downstream:
    def __init__(self, name: str, base_urls: str, settings: ServiceSettings) -> None:
        self.name = name
        urls = [url.strip().rstrip("/") for url in base_urls.split(",") if url.strip()]
        if not urls:
            raise ValueError(f"no URL for the {name} service")
        self._replicas = [ServiceClient(url) for url in urls]
        self._timeout = settings.downstream_timeout_seconds
        self.service_key = settings.service_api_key.get_secret_value()
        self._turns = itertools.cycle(range(len(urls)))

    async def call(
        self,
        method: str,
        path: str,
        *,
        internal: bool = False,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Any = None,
        timeout: float | None = None,
    ) -> Answer:
        """One request; `content` is sent as is, `json` serialised, `data` form-encoded, `params`
        (a mapping or a list of pairs) appended as the query string."""
        headers = {**(headers or {}), REQUEST_ID_HEADER: request_id_var.get()}
        if internal:
            headers[SERVICE_KEY_HEADER] = self.service_key
        body = content
        if json is not None:
            body = orjson.dumps(json)
            headers["content-type"] = "application/json"
        elif data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        elif body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        if params:
            path = f"{path}?{urllib.parse.urlencode(params, doseq=True)}"
        timeout = self._timeout if timeout is None else timeout
        first = next(self._turns)
        for turn in range(len(self._replicas)):
            replica = self._replicas[(first + turn) % len(self._replicas)]
            try:
                return await replica.request(
                    method, path, headers=headers, body=body, timeout=timeout, connect_timeout=min(1.0, timeout)
                )
            except ConnectFailed:
                continue  # refused: nothing was sent, so the next replica may take it
            except TimeoutError:
                raise timed_out(f"The {self.name} service") from None
            except ConnectionLost:  # dropped or reset mid-call: the outcome is unknown
                raise unavailable(f"The {self.name} service") from None
        raise unavailable(f"The {self.name} service")

    async def aclose(self) -> None:
        for replica in self._replicas:
            replica.close()
