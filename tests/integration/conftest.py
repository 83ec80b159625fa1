"""The integration suite runs the real stack: redis-server, auth, wallet, catalog and the gateway
as separate processes on free ports, over real HTTP."""

import asyncio
import itertools
import os
from pathlib import Path

import httpx
import pytest

from devstack.stack import Stack

ITEMS_FILE = Path(__file__).parent / "items.json"
# Short holds and timeouts so the fault tests finish in seconds.
TEST_SETTINGS = {
    "ITEMS_FILE": str(ITEMS_FILE),
    "RESERVATION_HOLD_SECONDS": "3",
    "RESERVATION_GRACE_SECONDS": "1",
    "SWEEP_INTERVAL_SECONDS": "0.5",
    "DOWNSTREAM_TIMEOUT_SECONDS": "2",
    "REDIS_TIMEOUT_SECONDS": "1",
    "WALLET_OUTBOX_INTERVAL_SECONDS": "0.5",
    "LOGIN_MAX_FAILURES": "5",
}
_names = itertools.count(1)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    os.environ.pop("SERVICE_API_KEY", None)
    running = Stack.on_free_ports(tmp_path_factory.mktemp("stack"), env=TEST_SETTINGS).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def api(stack):
    with httpx.Client(base_url=stack.url(), timeout=10) as client:
        yield client


def unique_name(prefix: str = "user") -> str:
    return f"{prefix}{os.getpid()}n{next(_names)}"


def register_and_login(api: httpx.Client, username: str | None = None, password: str = "correct horse") -> dict:
    """A new user; returns the Authorization header of its token."""
    username = username or unique_name()
    registered = api.post("/auth/register", json={"username": username, "password": password})
    assert registered.status_code == 201, registered.text
    login = api.post("/auth/login", data={"username": username, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def balance_of(api: httpx.Client, auth: dict) -> float:
    response = api.get("/wallet/balance", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["balance"]


def my_ledger(api: httpx.Client, auth: dict) -> list[dict]:
    response = api.get("/wallet/transactions", headers=auth, params={"limit": 200})
    assert response.status_code == 200, response.text
    return response.json()["transactions"]


def item_stock(api: httpx.Client, item_id: int) -> int | None:
    return api.get(f"/items/{item_id}").json()["stock"]


def concurrently(base_url: str, requests: list[dict], timeout: float = 30) -> list[httpx.Response]:
    """Send all requests at once (each a dict of httpx.request arguments) and return the responses."""

    async def send_all():
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
            return await asyncio.gather(*(client.request(**request) for request in requests))

    return asyncio.run(send_all())
