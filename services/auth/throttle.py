"""Failed-login counting in Redis, shared by every auth replica."""

from redis.asyncio import Redis


class LoginThrottle:
    def __init__(self, redis: Redis, *, max_per_user: int, max_per_address: int, window_seconds: int) -> None:
        self.redis = redis
        self.max_per_user = max_per_user
        self.max_per_address = max_per_address
        self.window = window_seconds

    @staticmethod
    def _keys(user_key: str, address: str) -> tuple[str, str]:
        return f"auth:throttle:user:{user_key}", f"auth:throttle:address:{address}"

    async def retry_after(self, user_key: str, address: str) -> int | None:
        """Seconds the caller must wait, or None when it may try a password now."""
        user_counter, address_counter = self._keys(user_key, address)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(user_counter).ttl(user_counter).get(address_counter).ttl(address_counter)
            user_failures, user_ttl, address_failures, address_ttl = await pipe.execute()
        waits = []
        if int(user_failures or 0) >= self.max_per_user:
            waits.append(user_ttl)
        if int(address_failures or 0) >= self.max_per_address:
            waits.append(address_ttl)
        return max(1, max(waits)) if waits else None

    async def record_failure(self, user_key: str, address: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for counter in self._keys(user_key, address):
                pipe.set(counter, 0, ex=self.window, nx=True).incr(counter)
            await pipe.execute()

    async def reset_user(self, user_key: str) -> None:
        await self.redis.delete(self._keys(user_key, "")[0])
