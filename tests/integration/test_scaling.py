"""The stack on a three-master Redis Cluster with two processes of every service."""

import asyncio
import signal
import uuid

import httpx
import pytest
from redis.cluster import RedisCluster

from tests.integration.conftest import (
    balance_of,
    concurrently,
    gateway_client,
    my_ledger,
    register_and_login,
    running_stack,
)
from tests.integration.walkthrough import walk_through_the_contract


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("scaled"), replicas=2, redis_cluster=True) as started:
        yield started


@pytest.fixture(scope="module")
def scaled_api(scaled):
    with gateway_client(scaled) as client:
        yield client


def test_the_cluster_is_three_masters_with_every_slot_assigned(scaled):
    cluster = RedisCluster.from_url(scaled.redis.url)
    info = cluster.cluster_info(target_nodes=RedisCluster.RANDOM)
    assert info["cluster_state"] == "ok" and int(info["cluster_slots_assigned"]) == 16384
    assert len(cluster.get_primaries()) == 3


def test_the_walkthrough_passes_on_the_cluster_with_replicas(scaled_api):
    walk_through_the_contract(scaled_api)


def test_users_whose_wallets_live_on_different_masters_all_work(scaled, scaled_api):
    cluster = RedisCluster.from_url(scaled.redis.url)
    masters = set()
    for _ in range(8):
        auth = register_and_login(scaled_api)
        user_id = scaled_api.get("/wallet/balance", headers=auth).json()["user_id"]
        masters.add(cluster.get_node_from_key(f"wallet:{{user:{user_id}}}").name)
        assert scaled_api.post("/items/buy/3", headers=auth).json()["balance"] == 90.0
    assert len(masters) >= 2


def test_sixty_concurrent_spends_of_three_give_exactly_33_successes_on_the_cluster(scaled, scaled_api):
    auth = register_and_login(scaled_api)
    responses = concurrently(
        scaled.url(), [dict(method="POST", url="/wallet/spend", headers=auth, json={"amount": 3})] * 60
    )
    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(400)) == (33, 27)
    assert balance_of(scaled_api, auth) == 1.0


def test_fifty_users_racing_for_five_units_on_the_cluster(scaled, scaled_api):
    users = [register_and_login(scaled_api) for _ in range(50)]
    responses = concurrently(scaled.url(), [dict(method="POST", url="/items/buy/7", headers=a) for a in users])
    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(409)) == (5, 45)
    assert scaled_api.get("/items/7").json()["stock"] == 0
    assert sorted(balance_of(scaled_api, auth) for auth in users) == [99.0] * 5 + [100.0] * 45


def test_killing_a_wallet_replica_mid_burst_loses_no_spend_and_debits_none_twice(scaled, scaled_api):
    auth = register_and_login(scaled_api)
    keys = [uuid.uuid4().hex for _ in range(300)]

    async def burst():
        async with httpx.AsyncClient(base_url=scaled.url(), timeout=10) as client:
            async def spend(key):
                try:
                    response = await client.post(
                        "/wallet/spend", headers={**auth, "Idempotency-Key": key}, json={"amount": "0.01"}
                    )
                    return response.status_code
                except httpx.TransportError:
                    return "lost"

            first = await asyncio.gather(*(spend(key) for key in keys[:150]))
            killing = asyncio.create_task(asyncio.to_thread(scaled.stop_service, "wallet-2", signal.SIGKILL))
            second = await asyncio.gather(*(spend(key) for key in keys[150:]))
            await killing
            after = await asyncio.gather(*(spend(uuid.uuid4().hex) for _ in range(20)))
            return first + second, after

    outcomes, after_kill = asyncio.run(burst())
    acknowledged = [key for key, outcome in zip(keys, outcomes) if outcome == 200]
    print(f"\nwallet replica killed mid-burst: {len(acknowledged)} of {len(keys)} acknowledged, "
          f"outcomes {sorted({str(o) for o in outcomes})}, {after_kill.count(200)}/20 after the kill")
    assert len(acknowledged) >= 150
    assert set(after_kill) == {200}, after_kill  # the survivor takes the whole load
    # Retrying every request with its key settles the unknown ones without charging anything twice.
    for key in keys:
        retry = scaled_api.post("/wallet/spend", headers={**auth, "Idempotency-Key": key}, json={"amount": "0.01"})
        assert retry.status_code == 200
    spends = [e for e in my_ledger(scaled_api, auth) if e["type"] == "SPEND"]
    assert len(spends) == len(keys) + len(after_kill)
    assert balance_of(scaled_api, auth) == round(100 - 0.01 * len(spends), 2)
