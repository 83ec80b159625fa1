"""DEBUG_LISTINGS: the contract's open listings, or admin-only, or off."""

from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from shared.tokens import Claims, InvalidToken, debug_listing_access


@dataclass
class FakeVerifier:
    """Stands in for the JWKS verifier: two known tokens, one per role."""

    async def verify(self, token: str) -> Claims:
        roles = {"admin-token": "admin", "user-token": "user"}
        if token not in roles:
            raise InvalidToken(token)
        return Claims(user_id=1, username="x", role=roles[token], expires_at=float("inf"))


@dataclass
class Settings:
    debug_listings: str


def app_with(mode: str) -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(mode)
    app.state.token_verifier = FakeVerifier()

    @app.get("/users")
    async def users(_: Annotated[None, Depends(debug_listing_access)]) -> list:
        return []

    return app


async def status_of(mode: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app_with(mode))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return (await client.get("/users", headers=headers)).status_code


@pytest.mark.parametrize(
    "mode, token, status",
    [
        ("open", None, 200),
        ("admin", None, 401),
        ("admin", "user-token", 403),
        ("admin", "forged", 401),
        ("admin", "admin-token", 200),
        ("off", "admin-token", 404),
    ],
)
def test_the_debug_listings_follow_the_setting(mode, token, status):
    import asyncio

    assert asyncio.run(status_of(mode, token)) == status
