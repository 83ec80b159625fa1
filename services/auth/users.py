"""The auth service's users in Redis. Every key shares the `{auth:users}` hash tag."""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis

from services.auth.usernames import username_key

PREFIX = "auth:{auth:users}"
USERNAME_INDEX = f"{PREFIX}:by-name"
ID_COUNTER = f"{PREFIX}:next-id"
WALLET_OUTBOX = f"{PREFIX}:wallet-outbox"
USER_KEY_PREFIX = f"{PREFIX}:user:"
REGISTER_SCRIPT = (Path(__file__).parent / "lua" / "register.lua").read_text()


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    password_hash: str


class UserStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._register = redis.register_script(REGISTER_SCRIPT)

    async def create(self, *, username: str, password_hash: str) -> int | None:
        """The new user's id, or None when the username is taken (in any case or width)."""
        created_at = datetime.now(UTC).isoformat()
        user_id = await self._register(
            keys=[USERNAME_INDEX, ID_COUNTER, WALLET_OUTBOX],
            args=[username_key(username), username, password_hash, created_at, USER_KEY_PREFIX],
        )
        return int(user_id) or None

    async def by_id(self, user_id: int) -> User | None:
        fields = await self.redis.hgetall(f"{USER_KEY_PREFIX}{user_id}")
        if not fields:
            return None
        return User(int(fields["id"]), fields["username"], fields.get("role", "user"), fields["password_hash"])

    async def by_username(self, username: str) -> User | None:
        user_id = await self.redis.hget(USERNAME_INDEX, username_key(username))
        return await self.by_id(int(user_id)) if user_id else None

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self.redis.hset(f"{USER_KEY_PREFIX}{user_id}", "password_hash", password_hash)

    async def set_role(self, user_id: int, role: str) -> None:
        await self.redis.hset(f"{USER_KEY_PREFIX}{user_id}", "role", role)

    async def page(self, *, after_id: int, limit: int) -> list[dict]:
        """Users with ids after `after_id`, in id order; ids are dense, so this is one pipeline."""
        last_id = int(await self.redis.get(ID_COUNTER) or 0)
        ids = range(after_id + 1, min(last_id, after_id + limit) + 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in ids:
                pipe.hmget(f"{USER_KEY_PREFIX}{user_id}", "id", "username", "role")
            rows = await pipe.execute()
        return [{"id": int(row[0]), "username": row[1], "role": row[2]} for row in rows if row[0]]

    async def wallets_to_open(self) -> list[int]:
        return [int(member) for member in await self.redis.smembers(WALLET_OUTBOX)]

    async def wallet_opened(self, user_id: int) -> None:
        await self.redis.srem(WALLET_OUTBOX, user_id)
