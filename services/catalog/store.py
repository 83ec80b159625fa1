"""Items, stock and reservations in Redis. Each item's keys share the hash tag `{item:<id>}`."""

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from redis.asyncio import Redis

from shared.money import parse_amount, to_paise

LUA = Path(__file__).parent / "lua"
ITEM_IDS = "catalog:items"
UNPAID_RECORD_TTL = 2 * 24 * 3600


def item_key(item_id: int) -> str:
    return f"catalog:{{item:{item_id}}}"


def purchase_key(item_id: int, purchase_id: str) -> str:
    return f"catalog:{{item:{item_id}}}:purchase:{purchase_id}"


def pending_key(item_id: int) -> str:
    return f"catalog:{{item:{item_id}}}:pending"


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    price: int  # paise
    stock: int | None  # None: unlimited


def load_seed_items(path: Path) -> list[Item]:
    """The items a fresh install starts with; a malformed file stops the service at start-up."""
    items = []
    for row in json.loads(path.read_text()):
        stock = row.get("stock")
        if stock is not None and (not isinstance(stock, int) or stock < 0):
            raise ValueError(f"{path}: item {row.get('id')} has an invalid stock {stock!r}")
        price = to_paise(parse_amount(str(row["price"]), field=f"price of item {row['id']}", maximum=Decimal("1e9")))
        items.append(Item(id=int(row["id"]), name=str(row["name"]), price=price, stock=stock))
    return items


class Catalog:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._seed = redis.register_script((LUA / "seed.lua").read_text())
        self._reserve = redis.register_script((LUA / "reserve.lua").read_text())
        self._settle = redis.register_script((LUA / "settle.lua").read_text())

    async def seed(self, items: list[Item]) -> int:
        added = 0
        for item in items:
            stock = "" if item.stock is None else item.stock
            added += await self._seed(keys=[item_key(item.id)], args=[item.id, item.name, item.price, stock])
            await self.redis.zadd(ITEM_IDS, {str(item.id): item.id})
        return added

    async def item_ids(self) -> list[int]:
        return [int(i) for i in await self.redis.zrange(ITEM_IDS, 0, -1)]

    async def all_items(self) -> list[Item]:
        ids = await self.item_ids()
        async with self.redis.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hmget(item_key(item_id), "name", "price", "stock")
            rows = await pipe.execute()
        return [_item(item_id, row) for item_id, row in zip(ids, rows) if row[0] is not None]

    async def item(self, item_id: int) -> Item | None:
        row = await self.redis.hmget(item_key(item_id), "name", "price", "stock")
        return None if row[0] is None else _item(item_id, row)

    async def reserve(self, *, item_id: int, purchase_id: str, user_id: int, idempotency_key: str, hold_ms: int) -> dict:
        result = await self._reserve(
            keys=[item_key(item_id), purchase_key(item_id, purchase_id), pending_key(item_id)],
            args=[purchase_id, user_id, hold_ms, idempotency_key],
        )
        return json.loads(result)

    async def settle(self, *, item_id: int, purchase_id: str, state: str) -> str:
        return await self._settle(
            keys=[item_key(item_id), purchase_key(item_id, purchase_id), pending_key(item_id)],
            args=[purchase_id, state, UNPAID_RECORD_TTL],
        )

    async def overdue_reservations(self, *, item_id: int, older_than_ms: int) -> list[tuple[str, int, str]]:
        """(purchase id, user id, idempotency key) of reservations whose deadline passed long enough ago."""
        purchase_ids = await self.redis.zrangebyscore(pending_key(item_id), "-inf", older_than_ms, start=0, num=100)
        overdue = []
        for purchase_id in purchase_ids:
            user_id, key = await self.redis.hmget(purchase_key(item_id, purchase_id), "user_id", "idempotency_key")
            if user_id is not None:
                overdue.append((purchase_id, int(user_id), key))
        return overdue

    async def now_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return seconds * 1000 + micros // 1000


def _item(item_id: int, row: list) -> Item:
    name, price, stock = row
    return Item(id=item_id, name=name, price=int(price), stock=int(stock) if stock not in (None, "") else None)
