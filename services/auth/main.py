"""Auth service: register, log in, publish the token keys; opens each new user's wallet."""

import asyncio
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field, field_validator

from services.auth.keys import KeyRing
from services.auth.passwords import HasherBusy, PasswordHasher
from services.auth.settings import AuthSettings
from services.auth.throttle import LoginThrottle
from services.auth.usernames import normalise_username, username_key
from services.auth.users import UserStore
from shared.errors import BEARER_CHALLENGE
from shared.internal import InternalCaller
from shared.metrics import LOGIN_FAILURES, THROTTLED_LOGINS
from shared.service import create_service_app, running_in_background, service_clients

INCORRECT_LOGIN = "Incorrect username or password"
MAX_PASSWORD_LENGTH = 1024
WALLET_OPEN_TIMEOUT_SECONDS = 1.0  # registration waits this long at most; the outbox does the rest
log = logging.getLogger("auth")
settings = AuthSettings()


class Registration(BaseModel):
    username: str = Field(examples=["testuser"])
    password: str = Field(min_length=6, max_length=MAX_PASSWORD_LENGTH, examples=["securepassword123"])

    @field_validator("username")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalise_username(value)


class Registered(BaseModel):
    username: str


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserSummary(BaseModel):
    id: int
    username: str
    role: str


async def open_wallet(app: FastAPI, user_id: int, username: str) -> bool:
    """Ask the wallet to open this user's wallet (idempotent there); False when it cannot now."""
    try:
        response = await app.state.wallet.call(
            "PUT", f"/internal/wallets/{user_id}", internal=True, json={"username": username},
            timeout=WALLET_OPEN_TIMEOUT_SECONDS,
        )
    except HTTPException as error:
        log.warning("wallet not reachable to open wallet", extra={"user_id": user_id, "status": error.status_code})
        return False
    if response.status_code != 200:
        log.warning("wallet refused to open wallet", extra={"user_id": user_id, "status": response.status_code})
        return False
    await app.state.users.wallet_opened(user_id)
    return True


async def drain_wallet_outbox(app: FastAPI) -> None:
    """Open the wallets that registration could not open (the wallet was down), until all are."""
    while True:
        await asyncio.sleep(settings.wallet_outbox_interval_seconds)
        try:
            for user_id in await app.state.users.wallets_to_open():
                user = await app.state.users.by_id(user_id)
                if user and not await open_wallet(app, user.id, user.username):
                    break
        except Exception:  # keep draining after a Redis hiccup
            log.exception("wallet outbox pass failed")


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with service_clients(app, settings) as (redis, downstream):
        app.state.wallet = downstream("wallet", settings.wallet_url)
        app.state.users = UserStore(redis)
        app.state.keys = KeyRing.load(
            keys_dir=settings.keys_dir, signing_key_pem=settings.signing_key_pem, generate=settings.generate_signing_key
        )
        app.state.hasher = PasswordHasher(settings.hashing_concurrency, settings.hashing_max_waiting)
        app.state.throttle = LoginThrottle(
            redis,
            max_per_user=settings.login_max_failures,
            max_per_address=settings.login_max_failures_per_address,
            window_seconds=settings.login_window_seconds,
        )
        async with running_in_background(drain_wallet_outbox(app)):
            yield


app = create_service_app(
    service="auth",
    title="Auth service",
    description="Registers users, checks passwords and signs the access tokens every service verifies.",
    settings=settings,
    lifespan=lifespan,
)


@app.exception_handler(HasherBusy)
async def too_many_password_checks(request: Request, exc: HasherBusy) -> JSONResponse:
    return JSONResponse(
        {"detail": "Too many logins at once; retry shortly."}, status_code=503, headers={"Retry-After": "1"}
    )


@app.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=Registered, tags=["auth"])
async def register(body: Registration, request: Request) -> Registered:
    """Create a user; its wallet opens with 100.00."""
    users: UserStore = request.app.state.users
    if await users.by_username(body.username) is not None:  # spare the hash for a taken name
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="Username already registered")
    password_hash = await request.app.state.hasher.hash(body.password)
    user_id = await users.create(username=body.username, password_hash=password_hash)
    if user_id is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="Username already registered")
    # The user is committed with its wallet queued; if the wallet is down now, the outbox opens it.
    await open_wallet(request.app, user_id, body.username)
    return Registered(username=body.username)


def client_address(request: Request) -> str:
    """The caller's address; the gateway's X-Forwarded-For is trusted only with the service key."""
    forwarded = request.headers.get("x-forwarded-for")
    expected = settings.service_api_key.get_secret_value()
    if forwarded and request.headers.get("x-service-key") == expected:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


@app.post("/auth/login", response_model=AccessToken, tags=["auth"])
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request) -> AccessToken:
    """Exchange username and password (OAuth2 password form) for a bearer token."""
    state = request.app.state
    user_key, address = username_key(form.username), client_address(request)
    wait = await state.throttle.retry_after(user_key, address)
    if wait is not None:
        THROTTLED_LOGINS.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="Too many failed logins; try again later.",
            headers={"Retry-After": str(wait)},
        )
    user = await state.users.by_username(form.username)
    if len(form.password) > MAX_PASSWORD_LENGTH:  # cannot be anyone's password; never hash it
        matches, new_hash = False, None
    else:
        matches, new_hash = await state.hasher.verify(form.password, user.password_hash if user else None)
    if not matches or user is None:
        await state.throttle.record_failure(user_key, address)
        LOGIN_FAILURES.inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INCORRECT_LOGIN, headers=BEARER_CHALLENGE)
    if new_hash:
        await state.users.set_password_hash(user.id, new_hash)
    await state.throttle.reset_user(user_key)
    return AccessToken(access_token=issue_token(state.keys, user_id=user.id, username=user.username, role=user.role))


def issue_token(keys: KeyRing, *, user_id: int, username: str, role: str) -> str:
    now = int(time.time())
    return keys.sign(
        {
            "sub": str(user_id),
            "username": username,
            "role": role,
            "iat": now,
            "exp": now + settings.token_ttl_minutes * 60,
            "iss": settings.token_issuer,
            "aud": settings.token_audience,
            "jti": uuid.uuid4().hex,
        }
    )


@app.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify access tokens")
async def jwks(request: Request) -> dict:
    return request.app.state.keys.jwks()


@app.get("/internal/users", response_model=list[UserSummary], dependencies=[InternalCaller], tags=["internal"])
async def list_users(
    request: Request,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    return await request.app.state.users.page(after_id=after_id, limit=limit)


@app.get("/internal/users/{user_id}", response_model=UserSummary, dependencies=[InternalCaller], tags=["internal"])
async def get_user(user_id: int, request: Request) -> UserSummary:
    user = await request.app.state.users.by_id(user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"User {user_id} not found.")
    return UserSummary(id=user.id, username=user.username, role=user.role)
