"""Money that is exact, atomic, idempotent and recorded (against the running stack)."""

import random
import uuid

import pytest
import redis

from tests.integration.conftest import (
    balance_of,
    concurrently,
    ledger_invariant_violations,
    my_ledger,
    register_and_login,
)


@pytest.mark.parametrize("body", ['{"amount": 20.5}', '{"amount": 20.50}', '{"amount": "20.50"}'])
def test_an_amount_is_read_exactly_however_it_is_written(api, body):
    auth = register_and_login(api)
    response = api.post("/wallet/spend", headers={**auth, "content-type": "application/json"}, content=body)
    assert response.json()["balance"] == 79.5


@pytest.mark.parametrize(
    "raw, rule",
    [
        ("0", "greater than 0"), ("-0.00", "greater than 0"), ('"\u22125"', "decimal number"),
        ("10.005", "two decimal places"), ("NaN", "finite"), ("Infinity", "finite"), ("1e309", "at most"),
        ("true", "decimal number"), ("null", "decimal number"), ("[1]", "decimal number"),
        ('{"a": 1}', "decimal number"), ("100000.01", "at most"),
    ],
)
def test_a_bad_amount_is_422_naming_field_and_rule_and_moves_nothing(api, raw, rule):
    auth = register_and_login(api)
    body = f'{{"amount": {raw}, "description": "bad"}}'.encode()
    response = api.post("/wallet/spend", headers={**auth, "content-type": "application/json"}, content=body)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "amount"] and rule in error["msg"]
    assert balance_of(api, auth) == 100.0
    assert [entry["type"] for entry in my_ledger(api, auth)] == ["REGISTER"]


def test_three_spends_of_ten_paise_leave_exactly_99_7(api):
    auth = register_and_login(api)
    for _ in range(3):
        last = api.post("/wallet/spend", headers=auth, json={"amount": 0.1})
    assert last.json()["balance"] == 99.7
    assert last.content.endswith(b'"balance":99.7}')


def test_sixty_concurrent_spends_of_three_from_a_hundred_give_exactly_33_successes(api, stack):
    auth = register_and_login(api)
    responses = concurrently(
        stack.url(), [dict(method="POST", url="/wallet/spend", headers=auth, json={"amount": "3.00"})] * 60
    )
    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(400)) == (33, 27)
    assert all(r.json() == {"detail": "Insufficient funds in wallet."} for r in responses if r.status_code == 400)
    assert balance_of(api, auth) == 1.0
    assert len([e for e in my_ledger(api, auth) if e["type"] == "SPEND"]) == 33


def test_two_wallet_processes_serving_at_once_still_give_exactly_33_successes(api, stack):
    second_wallet = stack.start_replica("wallet")
    try:
        auth = register_and_login(api)
        spend = dict(method="POST", url="/wallet/spend", headers=auth, json={"amount": 3})
        requests = [dict(spend, url=(second_wallet if i % 2 else stack.url("wallet")) + "/wallet/spend")
                    for i in range(60)]
        statuses = [r.status_code for r in concurrently(stack.url(), requests)]
        assert (statuses.count(200), statuses.count(400)) == (33, 27)
        assert balance_of(api, auth) == 1.0
    finally:
        stack.stop_service("wallet-2")


def test_a_repeated_spend_with_one_idempotency_key_moves_money_once_and_replays_the_answer(api, stack):
    auth = register_and_login(api)
    headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    first = api.post("/wallet/spend", headers=headers, json={"amount": 12.34, "description": "once"})
    again = api.post("/wallet/spend", headers=headers, json={"amount": "12.34", "description": "once"})
    assert (first.status_code, first.content) == (again.status_code, again.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert balance_of(api, auth) == 87.66
    user_id = first.json()["user_id"]
    record_ttl = redis.Redis.from_url(stack.redis.url).ttl(f"wallet:{{user:{user_id}}}:idem:{headers['Idempotency-Key']}")
    assert record_ttl > 24 * 3600 - 60  # kept at least 24 hours


def test_a_refused_spend_is_replayed_as_refused_even_after_money_arrives(api, admin):
    auth = register_and_login(api)
    user_id = api.get("/wallet/balance", headers=auth).json()["user_id"]
    headers = {**auth, "Idempotency-Key": "big-spend"}
    assert api.post("/wallet/spend", headers=headers, json={"amount": 150}).status_code == 400
    top_up = api.post("/wallet/credits", headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
                      json={"user_id": user_id, "amount": 100, "type": "TOPUP"})
    assert top_up.json()["balance"] == 200.0
    replay = api.post("/wallet/spend", headers=headers, json={"amount": 150})
    assert (replay.status_code, replay.json()) == (400, {"detail": "Insufficient funds in wallet."})
    assert balance_of(api, auth) == 200.0


def test_ten_concurrent_requests_with_one_key_move_money_once(api, stack):
    auth = register_and_login(api)
    headers = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    responses = concurrently(
        stack.url(), [dict(method="POST", url="/wallet/spend", headers=headers, json={"amount": 7})] * 10
    )
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["balance"] for r in responses} == {93.0}
    assert balance_of(api, auth) == 93.0
    assert len([e for e in my_ledger(api, auth) if e["type"] == "SPEND"]) == 1


def test_one_key_with_a_different_body_or_path_is_409(api):
    auth = register_and_login(api)
    headers = {**auth, "Idempotency-Key": "k-" + uuid.uuid4().hex}
    assert api.post("/wallet/spend", headers=headers, json={"amount": 5}).status_code == 200
    changed = api.post("/wallet/spend", headers=headers, json={"amount": 6})
    assert changed.status_code == 409 and "Idempotency-Key" in changed.json()["detail"]
    other_path = api.post("/items/buy/3", headers=headers)
    assert other_path.status_code == 409
    assert balance_of(api, auth) == 95.0


def test_two_users_may_use_the_same_key(api):
    first, second = register_and_login(api), register_and_login(api)
    for auth in (first, second):
        response = api.post("/wallet/spend", headers={**auth, "Idempotency-Key": "shared-key"}, json={"amount": 1})
        assert response.json()["balance"] == 99.0


@pytest.mark.parametrize("key", ["x" * 256, "has space", "tab\tkey"])
def test_a_malformed_idempotency_key_is_422(api, key):
    auth = register_and_login(api)
    response = api.post("/wallet/spend", headers={**auth, "Idempotency-Key": key}, json={"amount": 1})
    assert response.status_code == 422 and "Idempotency-Key" in response.json()["detail"]
    assert balance_of(api, auth) == 100.0


def test_my_transactions_are_newest_first_with_a_cursor(api):
    auth = register_and_login(api)
    for cents in range(1, 6):
        api.post("/wallet/spend", headers=auth, json={"amount": cents / 100, "description": f"spend {cents}"})
    first = api.get("/wallet/transactions", headers=auth, params={"limit": 4}).json()
    assert [e["description"] for e in first["transactions"]] == ["spend 5", "spend 4", "spend 3", "spend 2"]
    assert first["transactions"][0]["balance_after"] == 99.85
    assert first["transactions"][0]["timestamp"].endswith("+00:00")
    rest = api.get("/wallet/transactions", headers=auth, params={"limit": 4, "before": first["next_cursor"]}).json()
    assert [e["description"] for e in rest["transactions"]] == ["spend 1", "Initial Wallet Setup"]
    assert rest["next_cursor"] is None
    too_many = api.get("/wallet/transactions", headers=auth, params={"limit": 201})
    assert too_many.status_code == 422


def test_credits_need_an_admin_token_and_an_idempotency_key(api, admin):
    auth = register_and_login(api)
    user_id = api.get("/wallet/balance", headers=auth).json()["user_id"]
    body = {"user_id": user_id, "amount": "10.00", "type": "REFUND", "item_id": 3, "description": "Refund: Notebook"}
    as_user = api.post("/wallet/credits", headers={**auth, "Idempotency-Key": "r1"}, json=body)
    assert as_user.status_code == 403
    without_key = api.post("/wallet/credits", headers=admin, json=body)
    assert without_key.status_code == 422
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert api.post("/wallet/credits", headers={**admin, **key}, json=body).json()["balance"] == 110.0
    assert api.post("/wallet/credits", headers={**admin, **key}, json=body).json()["balance"] == 110.0
    assert balance_of(api, auth) == 110.0
    assert my_ledger(api, auth)[0]["type"] == "REFUND"
    nobody = api.post("/wallet/credits", headers={**admin, "Idempotency-Key": uuid.uuid4().hex},
                      json={**body, "user_id": 10**9})
    assert (nobody.status_code, nobody.json()) == (404, {"detail": f"User {10**9} not found."})


def test_the_debug_listings_are_paginated(api):
    register_and_login(api), register_and_login(api)
    page = api.get("/users", params={"limit": 1})
    assert len(page.json()) == 1
    after = api.get("/users", params={"limit": 1, "after_id": page.json()[0]["id"]}).json()
    assert after[0]["id"] > page.json()[0]["id"]
    transactions = api.get("/transactions", params={"limit": 2})
    assert len(transactions.json()) == 2
    following = api.get("/transactions", params={"limit": 2, "cursor": transactions.headers["x-next-cursor"]})
    assert following.json()[0] != transactions.json()[0]
    assert api.get("/transactions", params={"limit": 100000}).status_code == 422


def test_random_concurrent_spends_buys_and_retries_keep_every_ledger_balanced(api, stack):
    rng = random.Random(20261203)
    users = [register_and_login(api) for _ in range(6)]
    requests = []
    for _ in range(240):
        auth = rng.choice(users)
        key = {"Idempotency-Key": f"r{rng.randrange(40)}"} if rng.random() < 0.5 else {}
        if rng.random() < 0.5:
            amount = f"{rng.randrange(1, 2000) / 100:.2f}"
            requests.append(dict(method="POST", url="/wallet/spend", headers={**auth, **key}, json={"amount": amount}))
        else:
            item = rng.choice([1, 2, 3, 4, 5, 11])
            requests.append(dict(method="POST", url=f"/items/buy/{item}", headers={**auth, **key}))
    statuses = [r.status_code for r in concurrently(stack.url(), requests, timeout=60)]
    assert set(statuses) <= {200, 400, 409}, statuses
    assert ledger_invariant_violations(api) == []
