"""The long-lived clients a service opens once in its lifespan: Redis and outbound HTTP."""

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.settings import ServiceSettings


def connect_redis(settings: ServiceSettings) -> Redis | RedisCluster:
    if settings.redis_cluster:
        # The cluster client follows MOVED/ASK redirects and retries on a failed-over node itself.
        return RedisCluster.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
            max_connections=256,
        )
    # Only a refused or dropped connection is retried, never a timeout. A dropped connection may
    # still have run the command: every script is safe to repeat (the money scripts by their
    # idempotency keys, the others by checking what exists first).
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],  # e.g. a pooled connection that Redis closed when it restarted
        max_connections=256,
    )


def http_client(settings: ServiceSettings) -> httpx.AsyncClient:
    # Idle connections are dropped before uvicorn's 5 s keep-alive closes them from its side,
    # so a request is never sent on a connection the server is closing.
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=64, keepalive_expiry=2.0)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.downstream_timeout_seconds, connect=min(1.0, settings.downstream_timeout_seconds)),
        limits=limits,
        # httpcore's pool scans every connection (a syscall each) on every request, which made
        # it most of the gateway's CPU under load; aiohttp's pool does not.
        transport=ServiceTransport(limits=limits),
    )


class ServiceTransport(AiohttpTransport):
    """aiohttp under httpx, with its failures told apart the way callers act on them: a refused
    connection (nothing was sent: try another replica) is a ConnectError, a connection dropped or
    reset mid-request (outcome unknown) a RemoteProtocolError, and only a timeout a timeout."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.HTTPError as error:
            cause = error.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError) and not isinstance(cause, aiohttp.ServerTimeoutError):
                raise httpx.ConnectError(str(cause), request=request) from cause
            if isinstance(cause, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):  # e.g. reset
                raise httpx.RemoteProtocolError(str(cause), request=request) from cause
            raise
