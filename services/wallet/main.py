"""Wallet service: balances, spends, purchase debits, credits and the ledger."""

from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field

from services.wallet.ledger import Ledger, Movement
from shared.contract import Balance, SpendRequest
from shared.errors import IDEMPOTENCY_KEY_REUSED, INSUFFICIENT_FUNDS, unauthorized, unavailable
from shared.hotpath import HotRequest, hot_route, json_answer
from shared.idempotency import IDEMPOTENCY_KEY_PATTERN, INVALID_KEY, IdempotencyKey, hot_idempotency_key
from shared.internal import InternalCaller, require_hot_service_key
from shared.metrics import CREDITS, DEBITS, IDEMPOTENT_REPLAYS, REFUSED_DEBITS
from shared.money import MAX_SPEND, Amount, to_paise, to_rupees
from shared.service import create_service_app, service_clients
from shared.settings import ServiceSettings
from shared.tokens import AdminClaims, CurrentClaims, TokenVerifier, debug_listing_access, hot_claims

settings = ServiceSettings()


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with service_clients(app, settings) as (redis, downstream):
        app.state.auth = downstream("auth", settings.auth_url)
        app.state.ledger = Ledger(redis)
        app.state.token_verifier = TokenVerifier(
            auth=app.state.auth, issuer=settings.token_issuer, audience=settings.token_audience
        )
        yield


app = create_service_app(
    service="wallet",
    title="Wallet service",
    description="Balances and the ledger. Amounts are rupees with at most two decimals; inside, integer paise.",
    settings=settings,
    lifespan=lifespan,
)


class LedgerEntry(BaseModel):
    id: int
    user_id: int
    timestamp: str = Field(description="ISO 8601, UTC.")
    type: str = Field(description="REGISTER, SPEND, BUY (debits and credits by type), TOPUP, REFUND.")
    amount: float = Field(description="Rupees, always positive; `type` says which way it went.")
    description: str
    item_id: int | None
    balance_after: float


class History(BaseModel):
    transactions: list[LedgerEntry]
    next_cursor: int | None = Field(description="Pass as `before` for the next (older) page; null at the end.")


class CreditRequest(BaseModel):
    user_id: int = Field(ge=1)
    amount: Amount
    type: str = Field(pattern="^(TOPUP|REFUND)$")
    description: str = Field("Admin credit", min_length=1, max_length=255)
    item_id: int | None = Field(None, ge=1, description="For a REFUND: the item whose purchase is refunded.")


class OpenWallet(BaseModel):
    username: str = Field(min_length=1, max_length=64)


class PurchaseDebit(BaseModel):
    amount_paise: int = Field(gt=0, le=to_paise(MAX_SPEND))
    item_id: int = Field(ge=1)
    item_name: str = Field(min_length=1, max_length=255)
    idempotency_key: str = Field(pattern=IDEMPOTENCY_KEY_PATTERN.pattern)
    deadline_ms: int = Field(0, ge=0, description="Refuse the debit after this time (epoch ms); 0 for none.")


async def ensure_wallet(request: Request | HotRequest, user_id: int, *, unknown_user: HTTPException) -> None:
    """A wallet that is missing although its user may exist: registration could not reach us yet.
    Ask auth whether the user exists and open the wallet if so; otherwise raise `unknown_user`."""
    response = await request.app.state.auth.call("GET", f"/internal/users/{user_id}", internal=True)
    if response.status_code == 404:
        raise unknown_user
    if response.status_code != 200:
        raise unavailable("The auth service")
    await request.app.state.ledger.open_wallet(user_id=user_id, username=response.json()["username"])


def count(movement: Movement, direction: str, entry_type: str) -> None:
    if movement.replay:
        IDEMPOTENT_REPLAYS.inc()
    elif movement.outcome == "ok":
        (DEBITS if direction == "debit" else CREDITS).labels(entry_type).inc()
    else:
        REFUSED_DEBITS.labels(movement.outcome).inc()


def balance_body(user_id: int, username: str, paise: int, headers: dict | None = None) -> Response:
    """The contract's balance answer, serialised directly: this is the hottest response of all."""
    return json_answer({"user_id": user_id, "username": username, "balance": to_rupees(paise)}, headers)


def answer(movement: Movement, user_id: int) -> Response:
    replayed = {"Idempotent-Replayed": "true"} if movement.replay else None
    if movement.outcome == "ok":
        return balance_body(user_id, movement.username, movement.balance, replayed)
    if movement.outcome == "insufficient":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=INSUFFICIENT_FUNDS, headers=replayed)
    if movement.outcome == "conflict":
        raise HTTPException(status.HTTP_409_CONFLICT, detail=IDEMPOTENCY_KEY_REUSED, headers=replayed)
    if movement.outcome == "expired":
        raise HTTPException(status.HTTP_409_CONFLICT, detail="The reservation expired before payment; nothing was charged.")
    if movement.outcome == "too_large":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="The balance would exceed the wallet's maximum.")
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Wallet of user {user_id} not found.")


async def move_money(
    request: Request | HotRequest, user_id: int, *, unknown_user: HTTPException | None = None, **movement
) -> Response:
    ledger: Ledger = request.app.state.ledger
    result = await ledger.move(user_id=user_id, **movement)
    if result.outcome == "no_wallet":
        await ensure_wallet(request, user_id, unknown_user=unknown_user or unauthorized())
        result = await ledger.move(user_id=user_id, **movement)
    count(result, movement["direction"], movement["entry_type"])
    return answer(result, user_id)


async def balance_answer(request: Request | HotRequest, user_id: int) -> Response:
    ledger: Ledger = request.app.state.ledger
    found = await ledger.balance(user_id=user_id)
    if found is None:
        await ensure_wallet(request, user_id, unknown_user=unauthorized())
        found = await ledger.balance(user_id=user_id)
    username, paise = found
    return balance_body(user_id, username, paise)


async def debit_for_spend(request: Request | HotRequest, user_id: int, body: SpendRequest, key: str | None) -> Response:
    return await move_money(
        request, user_id, direction="debit", amount=to_paise(body.amount),
        entry_type="SPEND", description=body.description, idempotency_key=key,
    )


@app.get("/wallet/balance", response_model=Balance, tags=["wallet"])
async def balance(claims: CurrentClaims, request: Request) -> Response:
    return await balance_answer(request, claims.user_id)


@hot_route(app, "GET", "/wallet/balance")
async def balance_hot(request: HotRequest) -> Response:
    return await balance_answer(request, (await hot_claims(request)).user_id)


@app.post("/wallet/spend", response_model=Balance, tags=["wallet"])
async def spend(body: SpendRequest, claims: CurrentClaims, key: IdempotencyKey, request: Request) -> Response:
    """Debit the caller's wallet; 400 when the balance is short. Safe to retry with an Idempotency-Key."""
    return await debit_for_spend(request, claims.user_id, body, key)


@hot_route(app, "POST", "/wallet/spend")
async def spend_hot(request: HotRequest) -> Response | None:
    claims = await hot_claims(request)
    body, key = request.json_body(SpendRequest), hot_idempotency_key(request)
    if body is None or key is INVALID_KEY:
        return None
    return await debit_for_spend(request, claims.user_id, body, key)


@app.get("/wallet/transactions", response_model=History, tags=["wallet"])
async def my_transactions(
    claims: CurrentClaims,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="next_cursor of the previous page")] = None,
) -> History:
    """The caller's own ledger, newest first."""
    entries, next_cursor = await request.app.state.ledger.history(user_id=claims.user_id, before=before, limit=limit)
    return History(transactions=entries, next_cursor=next_cursor)


@app.post("/wallet/credits", response_model=Balance, tags=["admin"])
async def credit(body: CreditRequest, admin: AdminClaims, key: IdempotencyKey, request: Request) -> Response:
    """Top up a wallet or refund a purchase: admin token only, and an Idempotency-Key is required."""
    if key is None:
        raise HTTPException(422, detail="A credit needs an Idempotency-Key header.")
    return await move_money(
        request, body.user_id, direction="credit", amount=to_paise(body.amount),
        entry_type=body.type, description=body.description, item_id=body.item_id, idempotency_key=key,
        unknown_user=HTTPException(status.HTTP_404_NOT_FOUND, detail=f"User {body.user_id} not found."),
    )


@app.get("/transactions", response_model=list[LedgerEntry], dependencies=[Depends(debug_listing_access)], tags=["debug"])
async def all_transactions(
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^\d{1,15}\.\d{1,15}$", description="X-Next-Cursor of the previous page")
    ] = None,
) -> list[dict]:
    """Every ledger entry, by user then time. The next page's cursor is in the X-Next-Cursor header."""
    after_user, after_position = map(int, cursor.split(".")) if cursor else (0, 0)
    entries, next_cursor = await request.app.state.ledger.all_entries(
        after_user=after_user, after_position=after_position, limit=limit
    )
    if next_cursor:
        response.headers["X-Next-Cursor"] = next_cursor
    return entries


@app.put("/internal/wallets/{user_id}", response_model=Balance, dependencies=[InternalCaller], tags=["internal"])
async def open_wallet(user_id: int, body: OpenWallet, request: Request) -> Response:
    ledger: Ledger = request.app.state.ledger
    await ledger.open_wallet(user_id=user_id, username=body.username)
    username, paise = await ledger.balance(user_id=user_id)
    return balance_body(user_id, username, paise)


async def debit_for_purchase(request: Request | HotRequest, user_id: int, body: PurchaseDebit) -> Response:
    return await move_money(
        request, user_id, direction="debit", amount=body.amount_paise, entry_type="BUY",
        description=f"Purchased: {body.item_name}", item_id=body.item_id,
        idempotency_key=body.idempotency_key, deadline_ms=body.deadline_ms,
    )


@app.post("/internal/wallets/{user_id}/purchases", response_model=Balance, dependencies=[InternalCaller], tags=["internal"])
async def purchase_debit(user_id: int, body: PurchaseDebit, request: Request) -> Response:
    """The gateway's debit for a purchase, at the catalog's price, once per purchase key."""
    return await debit_for_purchase(request, user_id, body)


@hot_route(app, "POST", "/internal/wallets/{user_id}/purchases")
async def purchase_debit_hot(request: HotRequest) -> Response | None:
    require_hot_service_key(request)
    user_id, body = request.int_param("user_id"), request.json_body(PurchaseDebit)
    if user_id is None or body is None:
        return None
    return await debit_for_purchase(request, user_id, body)


@app.get("/internal/wallets/{user_id}/operations/{key:path}", dependencies=[InternalCaller], tags=["internal"])
async def operation_outcome(user_id: int, key: str, request: Request) -> dict:
    outcome = await request.app.state.ledger.recorded_outcome(user_id=user_id, idempotency_key=key)
    if outcome is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No operation with this key.")
    return {"outcome": outcome}


@app.get("/internal/balances", dependencies=[InternalCaller], tags=["internal"])
async def balances(request: Request, ids: Annotated[str, Query(pattern=r"^\d+(,\d+){0,999}$")]) -> dict[int, float]:
    found = await request.app.state.ledger.balances([int(i) for i in ids.split(",")])
    return {user_id: to_rupees(paise) for user_id, paise in found.items()}
