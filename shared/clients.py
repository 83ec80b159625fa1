"""The Redis client a service opens once in its lifespan (calls to other services: downstream.py)."""

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
