import asyncio

import pytest

from services.auth.passwords import HasherBusy, PasswordHasher, password_context


def test_new_hashes_are_argon2id_with_the_configured_cost():
    assert password_context.hash("secret123").startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_an_unknown_user_is_checked_against_a_dummy_hash_and_never_matches():
    assert asyncio.run(PasswordHasher(1, 8).verify("anything", None)) == (False, None)


def test_checks_beyond_the_waiting_limit_are_refused_at_once():
    async def burst():
        hasher = PasswordHasher(concurrency=1, max_waiting=2)
        return await asyncio.gather(*(hasher.hash("pw123456") for _ in range(5)), return_exceptions=True)

    results = asyncio.run(burst())
    assert sum(isinstance(result, HasherBusy) for result in results) == 3
    assert all(result.startswith("$argon2id$") for result in results if isinstance(result, str))


@pytest.mark.parametrize("scheme", ["bcrypt", "argon2"])
def test_older_hashes_verify_and_ask_to_be_rehashed(scheme):
    from passlib.hash import argon2, bcrypt

    old = bcrypt.hash("pw123456") if scheme == "bcrypt" else argon2.using(memory_cost=65536, rounds=3).hash("pw123456")
    matches, new_hash = password_context.verify_and_update("pw123456", old)
    assert matches and new_hash.startswith("$argon2id$v=19$m=19456")
