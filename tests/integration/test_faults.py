"""Faults of Redis and of the services: money stays right, clients get 503/504, nothing is lost."""

import asyncio
import signal
import time

import httpx
import redis

from tests.integration.conftest import balance_of, my_ledger, register_and_login, unique_name, wait_for


def test_money_moves_after_a_script_flush_without_a_service_restart(api, stack):
    auth = register_and_login(api)
    assert api.post("/wallet/spend", headers=auth, json={"amount": 1}).status_code == 200
    redis.Redis.from_url(stack.redis.url).script_flush()
    assert api.post("/wallet/spend", headers=auth, json={"amount": 1}).json()["balance"] == 98.0
    assert api.post("/items/buy/11", headers=auth).json()["balance"] == 96.0


def test_balances_never_expire_and_redis_never_evicts(api, stack):
    auth = register_and_login(api)
    user_id = api.get("/wallet/balance", headers=auth).json()["user_id"]
    client = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    assert client.ttl(f"wallet:{{user:{user_id}}}") == -1
    assert client.ttl(f"wallet:{{user:{user_id}}}:ledger") == -1
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("appendfsync") == {"appendfsync": "always"}


def test_unreachable_redis_gives_503_with_retry_after_and_the_stack_recovers_by_itself(api, stack):
    auth = register_and_login(api)
    stack.redis.stop()
    try:
        started = time.monotonic()
        response = api.get("/wallet/balance", headers=auth)
        assert time.monotonic() - started < 5
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "unavailable" in response.json()["detail"]
        not_ready = httpx.get(stack.url("wallet") + "/readyz")
        assert (not_ready.status_code, not_ready.json()["detail"]) == (503, "Not ready: redis unavailable.")
        assert api.post("/auth/login", data={"username": "x" * 5, "password": "y" * 6}).status_code == 503
    finally:
        stack.redis.start()
    assert wait_for(lambda: api.get("/wallet/balance", headers=auth).status_code == 200)
    assert api.post("/wallet/spend", headers=auth, json={"amount": 5}).json()["balance"] == 95.0
    ready = httpx.get(stack.url() + "/readyz")
    assert ready.status_code == 200, ready.text


def test_every_acknowledged_spend_survives_redis_being_killed(api, stack):
    auth = register_and_login(api)
    acknowledged = 0
    for _ in range(50):
        if api.post("/wallet/spend", headers=auth, json={"amount": "0.37"}).status_code == 200:
            acknowledged += 1
    assert acknowledged == 50
    stack.redis.stop(signal.SIGKILL)
    stack.redis.start()
    assert wait_for(lambda: api.get("/wallet/balance", headers=auth).status_code == 200)
    assert balance_of(api, auth) == 81.5  # 100 - 50 x 0.37
    assert [e["type"] for e in my_ledger(api, auth)].count("SPEND") == 50


def test_a_registration_while_the_wallet_is_down_opens_the_wallet_once_when_it_returns(api, stack):
    name = unique_name()
    stack.stop_service("wallet")
    try:
        registered = api.post("/auth/register", json={"username": name, "password": "secret123"})
        assert registered.status_code == 201
        token = api.post("/auth/login", data={"username": name, "password": "secret123"}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        down = api.get("/wallet/balance", headers=auth)
        assert down.status_code == 503 and down.json() == {"detail": "The wallet service is unavailable; retry shortly."}
    finally:
        stack.start_service("wallet")
    assert balance_of(api, auth) == 100.0
    time.sleep(1.5)  # the auth outbox retries too: it must not add a second credit
    assert [e["type"] for e in my_ledger(api, auth)] == ["REGISTER"]


def test_a_token_for_a_user_that_does_not_exist_is_refused(api, stack):
    from services.auth.keys import KeyRing

    keys = KeyRing.load(keys_dir=stack.data_dir / "keys", signing_key_pem=None, generate=False)
    now = int(time.time())
    token = keys.sign({"sub": "999999", "username": "ghost", "iat": now, "exp": now + 60, "iss": "wallet-auth",
                       "aud": "wallet-api", "jti": "x"})
    response = api.get("/wallet/balance", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()) == (401, {"detail": "Could not validate credentials"})


def test_sigterm_during_a_burst_of_spends_cuts_off_no_request_and_loses_no_spend(api, stack):
    auth = register_and_login(api)
    replica = stack.start_replica("wallet")
    name = [n for n in stack.processes if n.startswith("wallet-")][-1]

    async def burst():
        async with httpx.AsyncClient(base_url=replica, timeout=10) as client:
            async def spend():
                try:
                    return (await client.post("/wallet/spend", headers=auth, json={"amount": "0.01"})).status_code
                except httpx.TransportError:
                    return "refused"  # arrived after the listener closed: never acknowledged

            tasks = [asyncio.create_task(spend()) for _ in range(200)]
            while sum(task.done() for task in tasks) < 10:  # the burst is under way
                await asyncio.sleep(0.005)
            stack.signal_service(name, signal.SIGTERM)
            return await asyncio.gather(*tasks)

    outcomes = asyncio.run(burst())
    stack.stop_service(name)
    acknowledged = outcomes.count(200)
    assert acknowledged > 0
    assert not [o for o in outcomes if isinstance(o, int) and o >= 500]
    spends = [e for e in my_ledger(api, auth) if e["type"] == "SPEND"]
    assert len(spends) >= acknowledged
    assert round(balance_of(api, auth) * 100) == 10000 - len(spends)
