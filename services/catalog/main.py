"""Catalog service: the items for sale, their prices and stock, and purchase reservations."""

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from services.catalog.store import Catalog, Item, load_seed_items
from shared.downstream import Downstream
from shared.hotpath import HotRequest, hot_route, json_answer
from shared.internal import InternalCaller, require_hot_service_key
from shared.money import to_rupees
from shared.service import create_service_app, running_in_background, service_clients
from shared.settings import ServiceSettings

log = logging.getLogger("catalog")


class CatalogSettings(ServiceSettings):
    items_file: Path = Field(Path(__file__).parent / "items.json", description="Items a fresh install starts with.")
    wallet_url: str = Field("http://127.0.0.1:8002", description="Wallet replicas' base URLs, comma-separated.")
    reservation_hold_seconds: float = Field(30, gt=0, description="How long a purchase may take to pay for its unit.")
    reservation_grace_seconds: float = Field(5, ge=0, description="Extra wait before settling an overdue reservation.")
    sweep_interval_seconds: float = Field(2, gt=0, description="How often overdue reservations are settled.")


settings = CatalogSettings()


class ItemOut(BaseModel):
    id: int
    name: str
    price: float = Field(description="Rupees.", examples=[50.0])
    stock: int | None = Field(None, description="Units left; null for unlimited.")


class ReservationRequest(BaseModel):
    purchase_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    user_id: int = Field(ge=1)
    idempotency_key: str = Field(min_length=1, max_length=255)


class Reservation(BaseModel):
    outcome: str = Field(description="pending, confirmed or released")
    price_paise: int
    name: str
    deadline_ms: int


class Settled(BaseModel):
    state: str = Field(description="confirmed, released or expired")


def present(item: Item) -> dict:
    """An item as the contract shows it (`ItemOut`)."""
    return {"id": item.id, "name": item.name, "price": to_rupees(item.price), "stock": item.stock}


async def settle_overdue_reservations(app: FastAPI) -> None:
    """A reservation whose purchase never finished (the gateway died) is settled by asking the
    wallet: paid -> confirmed, not paid -> expired, its unit back in stock. The wallet refuses a
    purchase debit after the reservation's deadline, so past deadline + grace the answer is final."""
    catalog: Catalog = app.state.catalog
    wallet: Downstream = app.state.wallet
    while True:
        await asyncio.sleep(settings.sweep_interval_seconds)
        try:
            cutoff = await catalog.now_ms() - int(settings.reservation_grace_seconds * 1000)
            for item_id in await catalog.item_ids():
                for purchase_id, user_id, key in await catalog.overdue_reservations(item_id=item_id, older_than_ms=cutoff):
                    response = await wallet.call(
                        "GET", f"/internal/wallets/{user_id}/operations/{quote(key, safe='')}", internal=True
                    )
                    if response.status_code not in (200, 404):
                        continue
                    paid = response.status_code == 200 and response.json()["outcome"] == "ok"
                    state = await catalog.settle(
                        item_id=item_id, purchase_id=purchase_id, state="confirmed" if paid else "expired"
                    )
                    log.info("overdue reservation settled", extra={"purchase_id": purchase_id, "state": state})
        except Exception as error:  # the wallet or Redis is down: try again next round
            log.warning("reservation sweep incomplete: %s", type(error).__name__)


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with service_clients(app, settings) as (redis, downstream):
        app.state.wallet = downstream("wallet", settings.wallet_url)
        app.state.catalog = Catalog(redis)
        added = await app.state.catalog.seed(load_seed_items(settings.items_file))
        log.info("catalog seeded", extra={"items_added": added})
        async with running_in_background(settle_overdue_reservations(app)):
            yield


app = create_service_app(
    service="catalog",
    title="Catalog service",
    description="Items, prices (rupees) and stock; reservations hold a unit while a purchase is paid.",
    settings=settings,
    lifespan=lifespan,
)


async def existing_item(item_id: int, request: Request) -> Item:
    item = await request.app.state.catalog.item(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Item with ID {item_id} not found.")
    return item


ExistingItem = Annotated[Item, Depends(existing_item)]


async def item_list(request: Request | HotRequest) -> Response:
    items = await request.app.state.catalog.all_items()
    return json_answer([present(item) for item in items])


@app.get("/items/list", response_model=list[ItemOut], tags=["items"])
async def list_items(request: Request) -> Response:
    """Every item, in id order."""
    return await item_list(request)


hot_route(app, "GET", "/items/list")(item_list)


@app.get("/items/{item_id}", response_model=ItemOut, tags=["items"])
async def get_item(item: ExistingItem) -> Response:
    return json_answer(present(item))


async def hold_unit(request: Request | HotRequest, item_id: int, body: ReservationRequest) -> Response:
    held = await request.app.state.catalog.reserve(
        item_id=item_id,
        purchase_id=body.purchase_id,
        user_id=body.user_id,
        idempotency_key=body.idempotency_key,
        hold_ms=int(settings.reservation_hold_seconds * 1000),
    )
    if held["outcome"] == "sold_out":
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"Item with ID {item_id} is out of stock.")
    if held["outcome"] == "not_found":
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Item with ID {item_id} not found.")
    return json_answer(
        {"outcome": held["outcome"], "price_paise": held["price"], "name": held["name"], "deadline_ms": held["deadline"]}
    )


@app.post(
    "/internal/items/{item_id}/reservations", response_model=Reservation, dependencies=[InternalCaller], tags=["internal"]
)
async def reserve(item_id: int, body: ReservationRequest, request: Request) -> Response:
    """Hold a unit for a purchase (idempotent on purchase_id); 409 when none is left."""
    return await hold_unit(request, item_id, body)


@hot_route(app, "POST", "/internal/items/{item_id}/reservations")
async def reserve_hot(request: HotRequest) -> Response | None:
    require_hot_service_key(request)
    item_id, body = request.int_param("item_id"), request.json_body(ReservationRequest)
    if item_id is None or body is None:
        return None
    return await hold_unit(request, item_id, body)


SETTLED_STATES = {"confirm": "confirmed", "release": "released"}


async def settle_reservation(request: Request | HotRequest, item_id: int, purchase_id: str, decision: str) -> Response:
    if decision not in SETTLED_STATES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Not Found")
    state = await request.app.state.catalog.settle(item_id=item_id, purchase_id=purchase_id, state=SETTLED_STATES[decision])
    if state == "unknown":
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such reservation.")
    return json_answer({"state": state})


@app.post(
    "/internal/items/{item_id}/reservations/{purchase_id}/{decision}",
    response_model=Settled,
    dependencies=[InternalCaller],
    tags=["internal"],
)
async def settle(item_id: int, purchase_id: str, decision: str, request: Request) -> Response:
    """`confirm` after the debit succeeded; `release` after it was refused."""
    return await settle_reservation(request, item_id, purchase_id, decision)


@hot_route(app, "POST", "/internal/items/{item_id}/reservations/{purchase_id}/{decision}")
async def settle_hot(request: HotRequest) -> Response | None:
    require_hot_service_key(request)
    item_id = request.int_param("item_id")
    if item_id is None:
        return None
    return await settle_reservation(request, item_id, request.path_params["purchase_id"], request.path_params["decision"])
