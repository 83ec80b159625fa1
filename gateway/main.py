"""Gateway: the public URL of the contract. It keeps no state: it routes each path to the
service that owns it and runs the purchase saga."""

import uuid
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from gateway import purchase
from gateway.relay import relay
from shared.contract import Balance, SpendRequest
from shared.downstream import Downstream
from shared.hotpath import HotRequest, hot_route
from shared.idempotency import INVALID_KEY, IdempotencyKey, hot_idempotency_key
from shared.metrics import PURCHASES
from shared.service import create_service_app, service_clients
from shared.settings import ServiceSettings
from shared.tokens import CurrentClaims, TokenVerifier, debug_listing_access, hot_claims


class GatewaySettings(ServiceSettings):
    wallet_url: str = Field("http://127.0.0.1:8002", description="Wallet replicas' base URLs, comma-separated.")
    catalog_url: str = Field("http://127.0.0.1:8003", description="Catalog replicas' base URLs, comma-separated.")


settings = GatewaySettings()


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with service_clients(app, settings, with_redis=False) as (_, downstream):
        app.state.auth = downstream("auth", settings.auth_url)
        app.state.wallet = downstream("wallet", settings.wallet_url)
        app.state.catalog = downstream("catalog", settings.catalog_url)
        app.state.token_verifier = TokenVerifier(
            auth=app.state.auth, issuer=settings.token_issuer, audience=settings.token_audience
        )
        for service in (app.state.auth, app.state.wallet, app.state.catalog):
            app.state.readiness[service.name] = _ready_check(service)
        yield


def _ready_check(service: Downstream):
    async def check() -> None:
        response = await service.call("GET", "/readyz")
        if response.status_code != 200:
            raise RuntimeError(f"{service.name} is not ready")

    return check


app = create_service_app(
    service="gateway",
    title="Wallet & Shop API",
    description=(
        "The public API: register and log in, a wallet in rupees (₹) with two decimals, and a shop. "
        "Log in at POST /auth/login, then press Authorize and paste the access_token."
    ),
    settings=settings,
    lifespan=lifespan,
)


class Registration(BaseModel):
    username: str = Field(examples=["testuser"], description="3 to 32 characters, no spaces.")
    password: str = Field(examples=["securepassword123"], description="6 to 1024 characters.")


class Registered(BaseModel):
    username: str


class AccessToken(BaseModel):
    access_token: str
    token_type: str


class Item(BaseModel):
    id: int
    name: str
    price: float
    stock: int | None = None


class UserListing(BaseModel):
    id: int
    username: str
    balance: float | None = Field(description="Rupees; null while the wallet is being opened.")


def forwarded_auth(request: Request | HotRequest) -> dict[str, str]:
    """The caller's credentials, passed on unjudged (the service judges them). Of a repeated
    header only the first counts, as everywhere else in the stack."""
    forwarded: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        if name in (b"authorization", b"idempotency-key"):
            forwarded.setdefault(name.decode(), value.decode("latin-1"))
    return forwarded


def state(request: Request | HotRequest):
    return request.app.state


@app.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=Registered, tags=["auth"])
async def register(body: Registration, request: Request) -> Response:
    """Create a user; the new wallet starts at 100.00."""
    return relay(await state(request).auth.call("POST", "/auth/register", content=await request.body(),
                                                 headers={"content-type": "application/json"}))


@app.post("/auth/login", response_model=AccessToken, tags=["auth"])
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request) -> Response:
    """OAuth2 password form: `username=..&password=..`."""
    client = request.client.host if request.client else "unknown"
    response = await state(request).auth.call(
        "POST",
        "/auth/login",
        internal=True,  # lets auth trust X-Forwarded-For for its per-address throttle
        data={"username": form.username, "password": form.password},
        headers={"x-forwarded-for": client},
    )
    return relay(response)


@hot_route(app, "GET", "/wallet/balance")
async def relay_balance(request: Request | HotRequest) -> Response:
    return relay(await state(request).wallet.call("GET", "/wallet/balance", headers=forwarded_auth(request)))


@app.get("/wallet/balance", response_model=Balance, tags=["wallet"])
async def balance(request: Request) -> Response:
    return await relay_balance(request)


async def relay_spend(request: Request | HotRequest, body: bytes) -> Response:
    return relay(
        await state(request).wallet.call(
            "POST", "/wallet/spend", content=body, headers={**forwarded_auth(request), "content-type": "application/json"}
        )
    )


@app.post("/wallet/spend", response_model=Balance, tags=["wallet"])
async def spend(claims: CurrentClaims, body: SpendRequest, key: IdempotencyKey, request: Request) -> Response:
    """Debit the wallet. Send an `Idempotency-Key` header to retry safely."""
    # The token is checked here too, so that a caller without a valid one gets 401 before any
    # complaint about the body, as on every Bearer endpoint.
    return await relay_spend(request, await request.body())


@hot_route(app, "POST", "/wallet/spend")
async def spend_hot(request: HotRequest) -> Response | None:
    await hot_claims(request)
    if hot_idempotency_key(request) is INVALID_KEY or request.json_body(SpendRequest) is None:
        return None
    return await relay_spend(request, request.body)


@app.get("/wallet/transactions", tags=["wallet"])
async def my_transactions(request: Request) -> Response:
    """Your ledger, newest first: `?limit=50&before=<next_cursor>`."""
    return relay(
        await state(request).wallet.call(
            "GET", "/wallet/transactions", params=request.query_params.multi_items(), headers=forwarded_auth(request)
        )
    )


@app.post("/wallet/credits", response_model=Balance, tags=["admin"])
async def credit(request: Request) -> Response:
    """Admin only: top up a wallet or refund a purchase (`Idempotency-Key` required)."""
    return relay(
        await state(request).wallet.call(
            "POST", "/wallet/credits", content=await request.body(),
            headers={**forwarded_auth(request), "content-type": "application/json"},
        )
    )


@hot_route(app, "GET", "/items/list")
async def relay_items(request: Request | HotRequest) -> Response:
    return relay(await state(request).catalog.call("GET", "/items/list"))


@app.get("/items/list", response_model=list[Item], tags=["items"])
async def list_items(request: Request) -> Response:
    return await relay_items(request)


@app.get("/items/{item_id}", response_model=Item, tags=["items"])
async def get_item(item_id: int, request: Request) -> Response:
    return relay(await state(request).catalog.call("GET", f"/items/{item_id}"))


async def purchase_once(request: Request | HotRequest, user_id: int, item_id: int, key: str | None) -> Response:
    app_state = state(request)
    try:
        response = await purchase.buy(
            catalog=app_state.catalog, wallet=app_state.wallet, user_id=user_id, item_id=item_id,
            idempotency_key=key or uuid.uuid4().hex,
        )
    except HTTPException as refused:
        PURCHASES.labels(str(refused.status_code)).inc()
        raise
    PURCHASES.labels(str(response.status_code)).inc()
    return response


@app.post("/items/buy/{item_id}", response_model=Balance, tags=["items"])
async def buy(item_id: int, claims: CurrentClaims, key: IdempotencyKey, request: Request) -> Response:
    """Pay the catalog's price for one unit. On 503/504, retry with the same `Idempotency-Key`."""
    return await purchase_once(request, claims.user_id, item_id, key)


@hot_route(app, "POST", "/items/buy/{item_id}")
async def buy_hot(request: HotRequest) -> Response | None:
    claims = await hot_claims(request)
    item_id, key = request.int_param("item_id"), hot_idempotency_key(request)
    if item_id is None or key is INVALID_KEY:
        return None
    return await purchase_once(request, claims.user_id, item_id, key)


@app.get("/users", response_model=list[UserListing], dependencies=[Depends(debug_listing_access)], tags=["debug"])
async def users(
    request: Request,
    after_id: Annotated[int, Query(ge=0, description="Last id of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    """Users with their balances (never a password hash), `limit` at a time after `after_id`."""
    app_state = state(request)
    found = await app_state.auth.call("GET", "/internal/users", internal=True, params={"after_id": after_id, "limit": limit})
    if found.status_code != 200:
        return relay(found)
    listed = found.json()
    balances = {}
    if listed:
        ids = ",".join(str(user["id"]) for user in listed)
        answer = await app_state.wallet.call("GET", "/internal/balances", internal=True, params={"ids": ids})
        if answer.status_code != 200:
            return relay(answer)
        balances = answer.json()
    return [{"id": u["id"], "username": u["username"], "balance": balances.get(str(u["id"]))} for u in listed]


@app.get("/transactions", dependencies=[Depends(debug_listing_access)], tags=["debug"])
async def transactions(request: Request) -> Response:
    """Every ledger entry (id, user_id, timestamp, type, amount, description, item_id), 100 at a time;
    the next page's cursor is in the X-Next-Cursor header (`?cursor=`)."""
    return relay(
        await state(request).wallet.call(
            "GET", "/transactions", params=request.query_params.multi_items(), headers=forwarded_auth(request)
        )
    )
