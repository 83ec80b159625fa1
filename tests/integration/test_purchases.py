"""Purchases across catalog and wallet: no oversell, no double charge, nothing lost on a fault."""

import signal
import time
import uuid

import httpx
import pytest

from gateway.purchase import purchase_id
from tests.integration.conftest import balance_of, concurrently, item_stock, my_ledger, register_and_login, wait_for


def user_id_of(api, auth) -> int:
    return api.get("/wallet/balance", headers=auth).json()["user_id"]


def test_one_item_is_returned_with_its_stock(api):
    assert api.get("/items/7").json()["name"] == "Last Five Units"
    assert api.get("/items/1").json() == {"id": 1, "name": "The Great Gatsby (Book)", "price": 50.0, "stock": None}
    assert api.get("/items/404").json() == {"detail": "Item with ID 404 not found."}


def test_twenty_concurrent_buys_of_a_60_item_from_100_succeed_exactly_once(api, stack):
    auth = register_and_login(api)
    stock_before = item_stock(api, 6)
    responses = concurrently(stack.url(), [dict(method="POST", url="/items/buy/6", headers=auth)] * 20)
    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(400)) == (1, 19)
    assert balance_of(api, auth) == 40.0
    assert item_stock(api, 6) == stock_before - 1
    assert [e["type"] for e in my_ledger(api, auth)] == ["BUY", "REGISTER"]


def test_fifty_users_racing_for_the_last_five_units_leave_45_untouched(api, stack):
    users = [register_and_login(api) for _ in range(50)]
    assert item_stock(api, 7) == 5
    responses = concurrently(stack.url(), [dict(method="POST", url="/items/buy/7", headers=auth) for auth in users])
    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(409)) == (5, 45)
    assert all(r.json() == {"detail": "Item with ID 7 is out of stock."} for r in responses if r.status_code == 409)
    assert item_stock(api, 7) == 0
    balances = sorted(balance_of(api, auth) for auth in users)
    assert balances == [99.0] * 5 + [100.0] * 45


def test_the_price_is_the_catalogs_whatever_the_client_sends(api):
    auth = register_and_login(api)
    response = api.post("/items/buy/3", headers=auth, params={"price": "0.01"}, json={"price": 0.01, "amount": 0.01})
    assert response.json()["balance"] == 90.0


def test_a_frozen_wallet_gives_a_quick_504_and_the_retry_charges_exactly_once(api, stack):
    auth = register_and_login(api)
    stock_before = item_stock(api, 8)
    headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    stack.signal_service("wallet", signal.SIGSTOP)
    try:
        started = time.monotonic()
        frozen = api.post("/items/buy/8", headers=headers)
        elapsed = time.monotonic() - started
    finally:
        stack.signal_service("wallet", signal.SIGCONT)
    assert frozen.status_code in (503, 504) and "retry" in frozen.json()["detail"].lower()
    assert frozen.headers["retry-after"]
    assert elapsed < 5, f"the client waited {elapsed:.1f}s"
    retried = api.post("/items/buy/8", headers=headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["balance"] == 90.0
    assert balance_of(api, auth) == 90.0
    assert [e["type"] for e in my_ledger(api, auth)].count("BUY") == 1
    assert item_stock(api, 8) == stock_before - 1


def test_a_stopped_catalog_gives_503_and_moves_no_money(api, stack):
    auth = register_and_login(api)
    stack.stop_service("catalog")
    try:
        response = api.post("/items/buy/3", headers=auth)
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json() == {"detail": "The catalog service is unavailable; retry shortly."}
    finally:
        stack.start_service("catalog")
    assert balance_of(api, auth) == 100.0


@pytest.fixture
def internal(stack):
    with httpx.Client(headers={"X-Service-Key": stack.service_env()["SERVICE_API_KEY"]}, timeout=10) as client:
        yield client


def reserve(internal, stack, *, item_id: int, user_id: int, key: str) -> dict:
    response = internal.post(
        stack.url("catalog") + f"/internal/items/{item_id}/reservations",
        json={"purchase_id": purchase_id(user_id, key), "user_id": user_id, "idempotency_key": key},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_purchase_abandoned_after_the_reservation_returns_its_unit_and_charges_nothing(api, stack, internal):
    auth = register_and_login(api)
    stock_before = item_stock(api, 9)
    reserve(internal, stack, item_id=9, user_id=user_id_of(api, auth), key="abandoned")  # then the gateway "dies"
    assert item_stock(api, 9) == stock_before - 1
    assert wait_for(lambda: item_stock(api, 9) == stock_before), "the held unit never came back"
    assert balance_of(api, auth) == 100.0


def test_a_purchase_abandoned_after_the_debit_is_confirmed_not_refunded_or_resold(api, stack, internal):
    auth = register_and_login(api)
    user_id, stock_before = user_id_of(api, auth), item_stock(api, 9)
    held = reserve(internal, stack, item_id=9, user_id=user_id, key="paid-then-died")
    paid = internal.post(
        stack.url("wallet") + f"/internal/wallets/{user_id}/purchases",
        json={"amount_paise": held["price_paise"], "item_id": 9, "item_name": held["name"],
              "idempotency_key": "paid-then-died", "deadline_ms": held["deadline_ms"]},
    )
    assert paid.status_code == 200  # and the gateway "dies" before confirming
    time.sleep(5)  # hold (3 s) + grace (1 s) + a sweep
    assert item_stock(api, 9) == stock_before - 1
    assert balance_of(api, auth) == 90.0
    retried = api.post("/items/buy/9", headers={**auth, "Idempotency-Key": "paid-then-died"})
    assert (retried.status_code, retried.json()["balance"]) == (200, 90.0)
    assert item_stock(api, 9) == stock_before - 1


def test_a_debit_after_the_reservation_deadline_is_refused_and_the_unit_returns(api, stack, internal):
    auth = register_and_login(api)
    user_id, stock_before = user_id_of(api, auth), item_stock(api, 9)
    held = reserve(internal, stack, item_id=9, user_id=user_id, key="too-late")
    time.sleep(3.2)
    late = internal.post(
        stack.url("wallet") + f"/internal/wallets/{user_id}/purchases",
        json={"amount_paise": held["price_paise"], "item_id": 9, "item_name": held["name"],
              "idempotency_key": "too-late", "deadline_ms": held["deadline_ms"]},
    )
    assert late.status_code == 409
    assert wait_for(lambda: item_stock(api, 9) == stock_before)
    assert balance_of(api, auth) == 100.0


def test_a_retry_after_an_interrupted_purchase_completes_it_once(api, stack, internal):
    auth = register_and_login(api)
    user_id, stock_before = user_id_of(api, auth), item_stock(api, 9)
    reserve(internal, stack, item_id=9, user_id=user_id, key="interrupted")
    finished = api.post("/items/buy/9", headers={**auth, "Idempotency-Key": "interrupted"})
    assert (finished.status_code, finished.json()["balance"]) == (200, 90.0)
    again = api.post("/items/buy/9", headers={**auth, "Idempotency-Key": "interrupted"})
    assert (again.status_code, again.json()["balance"]) == (200, 90.0)
    assert item_stock(api, 9) == stock_before - 1
    assert [e["type"] for e in my_ledger(api, auth)].count("BUY") == 1


def test_internal_endpoints_refuse_callers_without_the_service_key(api, stack):
    auth = register_and_login(api)
    response = httpx.post(
        stack.url("wallet") + f"/internal/wallets/{user_id_of(api, auth)}/purchases",
        json={"amount_paise": 1, "item_id": 1, "item_name": "x", "idempotency_key": "k"},
        headers=auth,
    )
    assert response.status_code == 403
    assert httpx.post(stack.url("catalog") + "/internal/items/7/reservations", json={}).status_code == 403
