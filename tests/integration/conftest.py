"""The integration suite runs the real stack: redis-server, auth, wallet, catalog and the gateway
as separate processes on free ports, over real HTTP."""

import asyncio
import contextlib
import itertools
import os
import time
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
    "CORS_ORIGINS": "https://shop.example",
}
_names = itertools.count(1)


@contextlib.contextmanager
def running_stack(data_dir: Path, **options):
    """The real stack on free ports with the test settings, stopped on the way out."""
    os.environ.pop("SERVICE_API_KEY", None)  # each stack makes its own
    running = Stack.on_free_ports(data_dir, env=TEST_SETTINGS, **options).start()
    try:
        yield running
    finally:
        running.stop()


def gateway_client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url(), timeout=10)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture(scope="session")
def api(stack):
    with gateway_client(stack) as client:
        yield client


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


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
    """The caller's whole ledger, newest first, page after page."""
    entries, before = [], None
    while True:
        params = {"limit": 200, **({"before": before} if before else {})}
        response = api.get("/wallet/transactions", headers=auth, params=params)
        assert response.status_code == 200, response.text
        entries += response.json()["transactions"]
        before = response.json()["next_cursor"]
        if before is None:
            return entries


def item_stock(api: httpx.Client, item_id: int) -> int | None:
    return api.get(f"/items/{item_id}").json()["stock"]


def concurrently(base_url: str, requests: list[dict], timeout: float = 30) -> list[httpx.Response]:
    """Send all requests at once (each a dict of httpx.request arguments) and return the responses."""

    async def send_all():
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
            return await asyncio.gather(*(client.request(**request) for request in requests))

    return asyncio.run(send_all())


@pytest.fixture(scope="session")
def admin(api, stack):
    """An admin's Authorization header, made the way the README tells an operator to."""
    import subprocess
    import sys

    name = unique_name("admin")
    register_and_login(api, name, "admin password")
    promoted = subprocess.run(
        [sys.executable, "-m", "services.auth.admin", "promote", name, "--redis-url", stack.redis.url],
        capture_output=True, text=True, check=False,
    )
    assert promoted.returncode == 0, promoted.stderr
    login = api.post("/auth/login", data={"username": name, "password": "admin password"})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def ledger_invariant_violations(api: httpx.Client) -> list[str]:
    """For every user: balance == credits - debits over the whole ledger. Returns what disagrees."""
    credits_minus_debits: dict[int, int] = {}
    cursor = None
    while True:
        page = api.get("/transactions", params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        for entry in page.json():
            sign = -1 if entry["type"] in ("SPEND", "BUY") else 1
            paise = round(entry["amount"] * 100)
            credits_minus_debits[entry["user_id"]] = credits_minus_debits.get(entry["user_id"], 0) + sign * paise
        cursor = page.headers.get("x-next-cursor")
        if not cursor:
            break
    violations, after_id = [], 0
    while True:
        users = api.get("/users", params={"after_id": after_id, "limit": 1000}).json()
        if not users:
            return violations
        for user in users:
            expected = credits_minus_debits.get(user["id"], 0)
            if user["balance"] is None or round(user["balance"] * 100) != expected:
                violations.append(f"user {user['id']}: balance {user['balance']} but ledger says {expected / 100}")
        after_id = users[-1]["id"]
