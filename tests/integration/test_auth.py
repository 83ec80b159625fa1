"""Attacks on tokens, passwords and usernames, against the running stack."""

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.auth.keys import KeyRing, new_key_file
from tests.integration.conftest import balance_of, register_and_login, unique_name

CHALLENGE = "Bearer"


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def victim(api):
    auth = register_and_login(api)
    token = auth["Authorization"].split()[1]
    return token, jwt.decode(token, options={"verify_signature": False}), jwt.get_unverified_header(token)


@pytest.fixture(scope="module")
def keys(stack):
    return KeyRing.load(keys_dir=stack.data_dir / "keys", signing_key_pem=None, generate=False)


def forged_tokens(token: str, claims: dict, header: dict, keys: KeyRing) -> dict[str, str]:
    head, body, signature = token.split(".")
    public_pem = keys.active.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    with_claims = lambda **changes: keys.sign({**claims, **changes})  # noqa: E731
    return {
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{b64({**claims, 'sub': '1'})}.",
        "HMAC signed with the public key": _hmac_with_public_key(claims, header, public_pem),
        "changed payload": f"{head}.{b64({**claims, 'sub': '1'})}.{signature}",
        "missing signature": f"{head}.{body}.",
        "expired": with_claims(iat=now - 3600, exp=now - 60),
        "other audience": with_claims(aud="someone-else"),
        "other issuer": with_claims(iss="evil-issuer"),
        "unknown kid": f"{b64({**header, 'kid': 'no-such-key'})}.{body}.{signature}",
        "garbage": "not-a-token",
        "no subject": keys.sign({k: v for k, v in claims.items() if k != "sub"}),
    }


def _hmac_with_public_key(claims: dict, header: dict, public_pem: bytes) -> str:
    """PyJWT refuses to HMAC-sign with a PEM key, as an attacker's tool would not: build it by hand."""
    import hashlib
    import hmac

    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']})}.{b64({**claims, 'sub': '1'})}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


ATTACKS = [
    "alg none", "HMAC signed with the public key", "changed payload", "missing signature", "expired",
    "other audience", "other issuer", "unknown kid", "garbage", "no subject",
]


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("service", ["gateway", "wallet"])
def test_a_forged_or_unfit_token_is_refused_with_401(stack, victim, keys, attack, service):
    token = forged_tokens(*victim, keys)[attack]
    response = httpx.get(stack.url(service) + "/wallet/balance", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()) == (401, {"detail": "Could not validate credentials"})
    assert response.headers["www-authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Basic dXNlcjpwYXNz", "TOKEN_WITHOUT_SCHEME", ""]
)
def test_a_header_without_a_bearer_token_is_not_authenticated(api, victim, authorization):
    authorization = authorization.replace("TOKEN_WITHOUT_SCHEME", victim[0])
    response = api.get("/wallet/balance", headers={"Authorization": authorization})
    assert (response.status_code, response.json()) == (401, {"detail": "Not authenticated"})
    assert response.headers["www-authenticate"] == CHALLENGE


def test_the_bearer_scheme_word_is_case_insensitive(api, victim):
    assert api.get("/wallet/balance", headers={"Authorization": f"bearer {victim[0]}"}).status_code == 200
    assert api.get("/wallet/balance", headers={"Authorization": f"BEARER {victim[0]}"}).status_code == 200


def test_a_token_carries_the_promised_claims(victim, stack):
    token, claims, header = victim
    assert header["alg"] == "EdDSA" and header["kid"]
    assert {"sub", "username", "iat", "exp", "iss", "aud", "jti"} <= set(claims)
    assert claims["sub"].isdigit() and claims["exp"] - claims["iat"] == 30 * 60
    jwks = httpx.get(stack.url("auth") + "/.well-known/jwks.json").json()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}
    assert all("d" not in key for key in jwks["keys"])  # never a private part


def test_usernames_differing_in_case_or_width_are_one_account(api):
    base = unique_name("Case")
    assert api.post("/auth/register", json={"username": base, "password": "secret123"}).status_code == 201
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in base.lower())
    for variant in (base.upper(), base.lower(), fullwidth):
        again = api.post("/auth/register", json={"username": variant, "password": "secret123"})
        assert (again.status_code, again.json()) == (400, {"detail": "Username already registered"})
    assert api.post("/auth/login", data={"username": base.upper(), "password": "secret123"}).status_code == 200


@pytest.mark.parametrize("username", ["ab", "x" * 33, "has space", "zero\u200bwidth", "ctrl\x07char"])
def test_a_bad_username_is_refused_with_422(api, username):
    response = api.post("/auth/register", json={"username": username, "password": "secret123"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "username"]


def test_passwords_differing_after_byte_72_are_different_passwords(api):
    name, prefix = unique_name(), "p" * 72
    register_and_login(api, name, prefix + "A")
    assert api.post("/auth/login", data={"username": name, "password": prefix + "B"}).status_code == 401


def test_a_password_longer_than_1024_characters_is_refused(api):
    response = api.post("/auth/register", json={"username": unique_name(), "password": "p" * 1025})
    assert response.status_code == 422


def test_repeated_failed_logins_are_throttled_and_a_success_resets_the_count(api):
    name = unique_name()
    register_and_login(api, name, "right password")
    for _ in range(4):
        assert api.post("/auth/login", data={"username": name, "password": "wrong"}).status_code == 401
    assert api.post("/auth/login", data={"username": name, "password": "right password"}).status_code == 200
    for _ in range(5):
        assert api.post("/auth/login", data={"username": name, "password": "wrong"}).status_code == 401
    throttled = api.post("/auth/login", data={"username": name, "password": "right password"})
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0


def test_a_rotated_signing_key_keeps_old_tokens_valid_and_signs_new_ones(api, stack):
    old_auth = register_and_login(api)
    old_kid = jwt.get_unverified_header(old_auth["Authorization"].split()[1])["kid"]
    new_key_file(stack.data_dir / "keys")
    stack.stop_service("auth")
    stack.start_service("auth")
    assert balance_of(api, old_auth) == 100.0
    new_auth = register_and_login(api)
    new_kid = jwt.get_unverified_header(new_auth["Authorization"].split()[1])["kid"]
    assert new_kid != old_kid
    assert balance_of(api, new_auth) == 100.0  # the wallet and gateway fetched the new key
    assert balance_of(api, old_auth) == 100.0


def test_an_old_bcrypt_hash_still_logs_in_and_is_rehashed_with_argon2id(api, stack):
    import redis
    from passlib.hash import bcrypt

    name = unique_name()
    register_and_login(api, name, "legacy password")
    store = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    user_id = store.hget("auth:{auth:users}:by-name", name.lower())
    user_key = f"auth:{{auth:users}}:user:{user_id}"
    store.hset(user_key, "password_hash", bcrypt.hash("legacy password"))
    assert api.post("/auth/login", data={"username": name, "password": "legacy password"}).status_code == 200
    assert store.hget(user_key, "password_hash").startswith("$argon2id$")
    assert api.post("/auth/login", data={"username": name, "password": "legacy password"}).status_code == 200
