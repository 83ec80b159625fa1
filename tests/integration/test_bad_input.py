"""Inputs that once crashed a service: each now gets a clear 4xx and changes nothing."""

import signal
import time

import httpx

from services.auth.keys import KeyRing
from tests.integration.conftest import balance_of, item_stock, register_and_login, unique_name


def test_a_lone_surrogate_in_a_string_is_422_with_a_valid_json_body(api):
    auth = register_and_login(api)
    body = b'{"amount": 1, "description": "\\ud800"}'
    response = api.post("/wallet/spend", headers={**auth, "content-type": "application/json"}, content=body)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "description"]
    registration = b'{"username": "' + unique_name().encode() + b'", "password": "abcdef\\udc80"}'
    refused = api.post("/auth/register", headers={"content-type": "application/json"}, content=registration)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "password"]
    assert balance_of(api, auth) == 100.0
    assert api.get("/items/list").status_code == 200  # the connection pool was not poisoned


def test_a_non_ascii_authorization_header_is_401(stack):
    headers = [(b"authorization", "Bearer ünïcödé".encode())]
    response = httpx.get(stack.url() + "/wallet/balance", headers=headers)
    assert (response.status_code, response.json()) == (401, {"detail": "Could not validate credentials"})


def test_a_login_with_a_huge_password_is_the_usual_401(api):
    name = unique_name()
    register_and_login(api, name, "right password")
    response = api.post("/auth/login", data={"username": name, "password": "x" * 5000})
    assert (response.status_code, response.json()) == (401, {"detail": "Incorrect username or password"})


def test_out_of_range_cursors_are_422_and_a_cursor_past_the_end_is_clamped(api):
    auth = register_and_login(api)
    assert api.get("/wallet/transactions", headers=auth, params={"before": "9" * 20}).status_code == 422
    assert api.get("/transactions", params={"cursor": "1." + "9" * 20}).status_code == 422
    clamped = api.get("/wallet/transactions", headers=auth, params={"before": 2**62}).json()
    assert [e["type"] for e in clamped["transactions"]] == ["REGISTER"] and clamped["next_cursor"] is None


def test_registering_while_the_wallet_is_frozen_succeeds_and_the_wallet_opens_later(api, stack):
    name = unique_name()
    stack.signal_service("wallet", signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = api.post("/auth/register", json={"username": name, "password": "secret123"})
        assert (response.status_code, response.json()) == (201, {"username": name})
        assert time.monotonic() - started < 2
    finally:
        stack.signal_service("wallet", signal.SIGCONT)
    login = api.post("/auth/login", data={"username": name, "password": "secret123"})
    assert balance_of(api, {"Authorization": f"Bearer {login.json()['access_token']}"}) == 100.0


def test_a_purchase_by_an_unknown_user_is_401_and_holds_no_stock(api, stack):
    keys = KeyRing.load(keys_dir=stack.data_dir / "keys", signing_key_pem=None, generate=False)
    now = int(time.time())
    claims = {"username": "ghost", "iat": now, "exp": now + 60, "iss": "wallet-auth", "aud": "wallet-api", "jti": "j"}
    stock = item_stock(api, 9)
    for subject in ("999999", "0"):
        token = keys.sign({**claims, "sub": subject})
        response = api.post("/items/buy/9", headers={"Authorization": f"Bearer {token}"})
        assert (response.status_code, response.json()) == (401, {"detail": "Could not validate credentials"})
    assert item_stock(api, 9) == stock


def test_a_spoofed_x_forwarded_for_does_not_escape_the_per_address_login_limit(api, stack):
    import redis

    limit_key = "auth:throttle:address:127.0.0.1"
    store = redis.Redis.from_url(stack.redis.url)
    try:
        for n in range(30):  # the per-address limit, spread over names so no username limit trips
            spoofed = {"X-Forwarded-For": f"203.0.113.{n}"}
            api.post("/auth/login", headers=spoofed, data={"username": unique_name("x"), "password": "wrong1"})
        blocked = api.post(
            "/auth/login", headers={"X-Forwarded-For": "198.51.100.7"}, data={"username": "anyone", "password": "pw1234"}
        )
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    finally:
        store.delete(limit_key)  # the operator's unblock, so later tests can log in


def test_of_repeated_credential_headers_only_the_first_counts_everywhere(api, stack):
    auth = register_and_login(api)
    headers = [("authorization", auth["Authorization"]), ("authorization", "Bearer junk")]
    assert httpx.get(stack.url() + "/wallet/balance", headers=headers).status_code == 200
    assert httpx.post(stack.url() + "/items/buy/3", headers=headers).status_code == 200
    reversed_headers = list(reversed(headers))
    assert httpx.get(stack.url() + "/wallet/balance", headers=reversed_headers).status_code == 401
    assert httpx.post(stack.url() + "/items/buy/3", headers=reversed_headers).status_code == 401
    assert balance_of(api, auth) == 90.0


def test_json_nested_a_thousand_deep_is_refused_without_a_500_on_every_hot_path(api, stack):
    auth = register_and_login(api)
    deep = b'{"amount": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    json_headers = {"content-type": "application/json"}
    assert api.post("/wallet/spend", headers=json_headers, content=deep).status_code == 401
    parsed = api.post("/wallet/spend", headers={**auth, **json_headers}, content=deep)
    assert (parsed.status_code, parsed.json()) == (400, {"detail": "There was an error parsing the body"})
    # The internal routes look at the service key before reading anything of the body.
    for service, path in [("wallet", "/internal/wallets/1/purchases"), ("catalog", "/internal/items/1/reservations")]:
        response = httpx.post(stack.url(service) + path, headers=json_headers, content=deep)
        assert response.status_code == 403, service
    assert balance_of(api, auth) == 100.0


def test_a_spend_without_a_valid_token_is_401_before_any_complaint_about_the_body(api):
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}):
        response = api.post("/wallet/spend", headers={**headers, "Idempotency-Key": "has space"}, json={"amount": -1})
        assert response.status_code == 401, headers


def test_numbers_of_extreme_magnitude_are_422_and_echoed_as_text(api):
    auth = register_and_login(api)
    json_headers = {"content-type": "application/json"}
    huge_name = api.post("/auth/register", headers=json_headers, content=b'{"username": 1e300000, "password": "abcdefg"}')
    assert huge_name.status_code == 422 and huge_name.json()["detail"][0]["input"] == "1E+300000"
    for amount in (b"1e5000", b"-1e5000", b"1e-5000"):
        spent = api.post("/wallet/spend", headers={**auth, **json_headers}, content=b'{"amount": ' + amount + b"}")
        assert spent.status_code == 422 and spent.json()["detail"][0]["loc"] == ["body", "amount"], amount
    ordinary = api.post("/wallet/spend", headers={**auth, **json_headers}, content=b'{"amount": 10.005}')
    assert ordinary.json()["detail"][0]["input"] == 10.005  # ordinary numbers are echoed as numbers
    assert balance_of(api, auth) == 100.0
