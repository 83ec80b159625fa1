"""Local verification of the bearer tokens the auth service signs.

Every service checks a token itself with auth's public keys (JWKS): signature, algorithm from an
allow-list, `exp`, `iss` and `aud`. Keys are fetched once and again only when a token names a
`kid` not seen yet. A verified token is
remembered until it expires, so the hot path costs a dict lookup.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.downstream import Downstream
from shared.errors import NOT_AUTHENTICATED, forbidden, unauthorized, unavailable
from shared.hotpath import HotRequest

log = logging.getLogger("tokens")
ALLOWED_ALGORITHMS = ["EdDSA"]
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti"]
ADMIN_ROLE = "admin"
JWKS_PATH = "/.well-known/jwks.json"


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    username: str
    role: str
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE


class InvalidToken(Exception):
    pass


class KeysUnavailable(Exception):
    pass


class TokenVerifier:
    def __init__(
        self,
        *,
        auth: Downstream,
        issuer: str,
        audience: str,
        cache_size: int = 50_000,
        refetch_interval_seconds: float = 1.0,
    ) -> None:
        self._auth = auth
        self._issuer = issuer
        self._audience = audience
        self._keys: dict[str, jwt.PyJWK] = {}
        self._verified: dict[str, Claims] = {}
        self._cache_size = cache_size
        self._refetch_interval = refetch_interval_seconds
        self._last_fetch = float("-inf")
        self._fetch_lock = asyncio.Lock()

    async def verify(self, token: str) -> Claims:
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and cached.expires_at > now:
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        kid, algorithm = header.get("kid"), header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS or not isinstance(kid, str):
            raise InvalidToken("algorithm or kid not accepted")
        key = await self._key_for(kid)
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=ALLOWED_ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        claims = _claims_from(payload)
        if len(self._verified) >= self._cache_size:
            self._forget_expired(now)
        self._verified[token] = claims
        return claims

    def _forget_expired(self, now: float) -> None:
        self._verified = {t: c for t, c in self._verified.items() if c.expires_at > now}
        if len(self._verified) >= self._cache_size:
            self._verified.clear()

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is not None:
            return key
        # Refetch at most once per interval, so forged kids cannot make us hammer auth; a real new
        # kid (after a rotation) waits for the next allowed fetch instead of being refused.
        asked_at = time.monotonic()
        async with self._fetch_lock:
            if kid not in self._keys and self._last_fetch < asked_at:  # no fetch while we queued
                await asyncio.sleep(max(0.0, self._last_fetch + self._refetch_interval - time.monotonic()))
                await self._fetch_keys()
        if not self._keys:
            raise KeysUnavailable("no token keys fetched yet")
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        return key

    async def _fetch_keys(self) -> None:
        self._last_fetch = time.monotonic()
        try:
            response = await self._auth.call("GET", JWKS_PATH)
            if response.status_code != 200:
                raise ValueError(f"JWKS answered {response.status_code}")
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (HTTPException, ValueError, jwt.PyJWTError) as error:
            log.warning("token keys not fetched: %s", type(error).__name__)
            return  # keep the keys we have; an unknown kid is then refused
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}


def _claims_from(payload: dict) -> Claims:
    subject, username = payload.get("sub"), payload.get("username")
    if not isinstance(subject, str) or not subject.isascii() or not subject.isdigit() or int(subject) < 1:
        raise InvalidToken("sub is not a user id")
    if not isinstance(username, str):
        raise InvalidToken("username missing")
    return Claims(
        user_id=int(subject),
        username=username,
        role=str(payload.get("role", "user")),
        expires_at=float(payload["exp"]),
    )


bearer_scheme = HTTPBearer(auto_error=False, description="The access_token from POST /auth/login.")


async def verified_claims(verifier: TokenVerifier, token: str | None) -> Claims:
    """The caller behind a bearer token; 401 with the contract's messages otherwise."""
    if token is None:
        raise unauthorized(NOT_AUTHENTICATED)
    try:
        return await verifier.verify(token)
    except InvalidToken:
        raise unauthorized() from None
    except KeysUnavailable:
        raise unavailable("The auth service (token keys)") from None


async def current_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Claims:
    return await verified_claims(request.app.state.token_verifier, credentials.credentials if credentials else None)


async def hot_claims(request: HotRequest) -> Claims:
    """The same check for a hot handler, made before anything else of the request is looked at."""
    return await verified_claims(request.app.state.token_verifier, request.bearer_token())


async def admin_claims(claims: Annotated[Claims, Depends(current_claims)]) -> Claims:
    if not claims.is_admin:
        raise forbidden("This operation needs an admin token.")
    return claims


CurrentClaims = Annotated[Claims, Depends(current_claims)]
AdminClaims = Annotated[Claims, Depends(admin_claims)]


async def debug_listing_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """GET /users and /transactions: open by default (the contract), admin-only, or off (404)."""
    mode = request.app.state.settings.debug_listings
    if mode == "off":
        raise HTTPException(404, detail="Not Found")
    if mode == "admin":
        await admin_claims(await current_claims(request, credentials))
