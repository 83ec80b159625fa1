"""Balances and the ledger in Redis. Each user's keys share the hash tag `{user:<id>}`, so every
script touches one cluster slot; money moves only inside `lua/move.lua` and `lua/open.lua`."""

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from redis.asyncio import Redis

from shared.money import to_rupees

LUA = Path(__file__).parent / "lua"
ACCOUNTS = "wallet:accounts"  # sorted set of user ids, for the debug listings
ENTRY_ID_BLOCKS = "wallet:entry-id-blocks"
OPENING_BALANCE = 100_00
MAX_BALANCE = 10_000_000_00  # credits beyond this are refused
REQUEST_KEY_TTL = 24 * 3600  # a client's Idempotency-Key is honoured at least this long
GENERATED_KEY_TTL = 600  # a key minted for a request without one only guards internal retries


def wallet_key(user_id: int) -> str:
    return f"wallet:{{user:{user_id}}}"


def ledger_key(user_id: int) -> str:
    return f"wallet:{{user:{user_id}}}:ledger"


def idempotency_record_key(user_id: int, idempotency_key: str) -> str:
    return f"wallet:{{user:{user_id}}}:idem:{idempotency_key}"


@dataclass(frozen=True)
class Movement:
    outcome: str  # ok | insufficient | too_large | conflict | no_wallet | expired
    balance: int | None = None
    username: str | None = None
    replay: bool = False


class EntryIds:
    """Unique ledger entry ids without a cross-slot counter in the money scripts: each process
    reserves a block of ids with one INCRBY and hands them out locally (hi/lo)."""

    BLOCK = 1000

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._next = self._end = 0
        self._lock = asyncio.Lock()

    async def next(self) -> int:
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    end = await self.redis.incrby(ENTRY_ID_BLOCKS, self.BLOCK)
                    self._next, self._end = end - self.BLOCK + 1, end + 1
        entry_id = self._next
        self._next += 1
        return entry_id


class Ledger:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.entry_ids = EntryIds(redis)
        self._open = redis.register_script((LUA / "open.lua").read_text())
        self._move = redis.register_script((LUA / "move.lua").read_text())

    async def open_wallet(self, *, user_id: int, username: str) -> None:
        """Create the wallet with its one REGISTER credit of 100.00; a repeat changes nothing."""
        await self._open(
            keys=[wallet_key(user_id), ledger_key(user_id)],
            args=[user_id, username, OPENING_BALANCE, await self.entry_ids.next()],
        )
        await self.redis.zadd(ACCOUNTS, {str(user_id): user_id})

    async def balance(self, *, user_id: int) -> tuple[str, int] | None:
        username, balance = await self.redis.hmget(wallet_key(user_id), "username", "balance")
        return None if balance is None else (username, int(balance))

    async def move(
        self,
        *,
        user_id: int,
        direction: str,
        amount: int,
        entry_type: str,
        description: str,
        item_id: int | None = None,
        idempotency_key: str | None = None,
        deadline_ms: int = 0,
    ) -> Movement:
        """Debit or credit `amount` paise once per idempotency key. Without a client key a fresh
        one is used, so that a retried command can never move the money twice."""
        # Stored in idempotency records that outlive a deploy: keep its exact text stable.
        fingerprint = json.dumps([direction, entry_type, amount, description, item_id])
        record_ttl = REQUEST_KEY_TTL if idempotency_key else GENERATED_KEY_TTL
        key = idempotency_key or f"generated:{uuid.uuid4().hex}"
        result = await self._move(
            keys=[wallet_key(user_id), ledger_key(user_id), idempotency_record_key(user_id, key)],
            args=[
                direction, amount, entry_type, description, "" if item_id is None else item_id,
                fingerprint, await self.entry_ids.next(), record_ttl, deadline_ms, MAX_BALANCE, user_id,
            ],
        )
        record = orjson.loads(result)
        return Movement(record["outcome"], record.get("balance"), record.get("username"), record.get("replay", False))

    async def recorded_outcome(self, *, user_id: int, idempotency_key: str) -> str | None:
        stored = await self.redis.get(idempotency_record_key(user_id, idempotency_key))
        return json.loads(stored)["outcome"] if stored else None

    async def history(self, *, user_id: int, before: int | None, limit: int) -> tuple[list[dict], int | None]:
        """One user's entries, newest first, from position `before` down; and the next cursor."""
        length = await self.redis.llen(ledger_key(user_id))
        end = length if before is None else min(before, length)
        start = max(0, end - limit)
        raw = await self.redis.lrange(ledger_key(user_id), start, end - 1) if end > 0 else []
        return [present_entry(entry) for entry in reversed(raw)], (start or None)

    async def all_entries(self, *, after_user: int, after_position: int, limit: int) -> tuple[list[dict], str | None]:
        """Every user's entries, by user then time, for the debug listing; and the next cursor."""
        entries: list[dict] = []
        user_ids = await self.redis.zrangebyscore(ACCOUNTS, after_user, "+inf", start=0, num=limit + 1)
        for user_id in map(int, user_ids):
            first = after_position if user_id == after_user else 0
            raw = await self.redis.lrange(ledger_key(user_id), first, first + limit - len(entries) - 1)
            entries.extend(present_entry(entry) for entry in raw)
            if len(entries) >= limit:
                return entries, f"{user_id}.{first + len(raw)}"
        return entries, None

    async def balances(self, user_ids: list[int]) -> dict[int, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hget(wallet_key(user_id), "balance")
            found = await pipe.execute()
        return {user_id: int(balance) for user_id, balance in zip(user_ids, found) if balance is not None}


def present_entry(raw: str) -> dict:
    """A stored entry as clients see it: rupees as JSON numbers and an ISO 8601 UTC timestamp."""
    entry = json.loads(raw)
    return {
        "id": entry["id"],
        "user_id": entry["user_id"],
        "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000, UTC).isoformat(timespec="milliseconds"),
        "type": entry["type"],
        "amount": to_rupees(entry["amount"]),
        "description": entry["description"],
        "item_id": entry["item_id"],
        "balance_after": to_rupees(entry["balance_after"]),
    }
