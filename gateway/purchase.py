"""A purchase as a saga across the catalog and the wallet.

1. reserve a unit in the catalog (idempotent on the purchase id; the catalog holds the price),
2. debit the wallet with that price (idempotent on the client's key, refused after the
   reservation's deadline),
3. confirm the reservation; when the debit was refused, release it instead.

When a step's outcome is unknown (a timeout), the reservation stays pending: a retry with the
same Idempotency-Key continues the same purchase, and if nobody retries, the catalog settles it
after its deadline by asking the wallet whether it was paid. So no unit is sold twice and no
debit exists without its unit.
"""

import hashlib
import logging

from fastapi import HTTPException, Response

from gateway.relay import relay
from shared.downstream import Downstream

log = logging.getLogger("gateway.purchase")
REPLAY_ONLY_DEADLINE = 1  # epoch ms long past: the wallet may only replay a recorded debit


def purchase_id(user_id: int, idempotency_key: str) -> str:
    return hashlib.sha256(f"{user_id}:{idempotency_key}".encode()).hexdigest()[:32]


async def buy(*, catalog: Downstream, wallet: Downstream, user_id: int, item_id: int, idempotency_key: str) -> Response:
    purchase = purchase_id(user_id, idempotency_key)
    reservations = f"/internal/items/{item_id}/reservations"
    held = await catalog.call(
        "POST",
        reservations,
        internal=True,
        json={"purchase_id": purchase, "user_id": user_id, "idempotency_key": idempotency_key},
    )
    if held.status_code != 200:
        return relay(held)  # 404 unknown item, 409 out of stock, 503
    reservation = held.json()
    already_paid = reservation["outcome"] == "confirmed"
    debit = await wallet.call(
        "POST",
        f"/internal/wallets/{user_id}/purchases",
        internal=True,
        json={
            "amount_paise": reservation["price_paise"],
            "item_id": item_id,
            "item_name": reservation["name"],
            "idempotency_key": idempotency_key,
            "deadline_ms": REPLAY_ONLY_DEADLINE if already_paid else reservation["deadline_ms"],
        },
    )
    if already_paid:
        if debit.status_code == 409:  # the wallet no longer keeps the record of this old purchase
            raise HTTPException(409, detail="This purchase was already completed.")
        return relay(debit)
    if debit.status_code == 200:
        await settle(catalog, f"{reservations}/{purchase}/confirm")
    elif 400 <= debit.status_code < 500:  # the wallet refused: nothing was charged
        await settle(catalog, f"{reservations}/{purchase}/release")
    # Anything else (503, 504) leaves the reservation pending, for a retry or the catalog's sweep.
    return relay(debit)


async def settle(catalog: Downstream, path: str) -> None:
    """Best effort: a reservation left pending is settled later by the catalog's sweep."""
    try:
        response = await catalog.call("POST", path, internal=True)
        if response.status_code != 200:
            log.warning("reservation not settled", extra={"path": path, "status": response.status_code})
    except HTTPException as error:
        log.warning("reservation not settled", extra={"path": path, "status": error.status_code})
