"""Hot paths: matching, reading a request the way FastAPI would, and handing a declined request
(body included) to the FastAPI route, inside the stack's middleware."""

import asyncio
from decimal import Decimal

import httpx
import pytest
from fastapi import HTTPException, Request
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.contract import SpendRequest
from shared.hotpath import HotRequest, HotRoutes, hot_route, json_answer, read_body, replaying
from shared.service import create_service_app
from shared.settings import ServiceSettings


def hot_request(headers: dict[str, str] | None = None, body: bytes = b"", **path_params) -> HotRequest:
    raw = [(name.lower().encode(), value.encode("latin-1")) for name, value in (headers or {}).items()]
    return HotRequest({"type": "http", "headers": raw}, body, path_params)


def test_routes_match_their_template_and_method_only():
    routes = HotRoutes()
    routes.add("POST", "/items/buy/{item_id}", handler=None)
    routes.add("GET", "/items/list", handler=None)
    route, params = routes.match("POST", "/items/buy/42")
    assert (route.template, params) == ("/items/buy/{item_id}", {"item_id": "42"})
    assert routes.match("GET", "/items/buy/42") is None
    assert routes.match("POST", "/items/buy/42/more") is None
    assert routes.match("GET", "/items/list/") is None
    assert routes.match("GET", "/items.list") is None  # the dot in a template is not a wildcard
    assert not HotRoutes()


@pytest.mark.parametrize(
    "raw, expected", [("42", 42), ("007", 7), ("1_0", None), ("-1", None), ("١٢", None), ("9" * 19, None), ("", None)]
)
def test_an_int_param_is_plain_decimal_digits(raw, expected):
    assert hot_request(item_id=raw).int_param("item_id") == expected


def test_the_body_is_read_with_exact_decimals():
    body = hot_request({"Content-Type": "application/json; charset=utf-8"}, b'{"amount": 0.1}').json_body(SpendRequest)
    assert body.amount == Decimal("0.1") and body.description == "General Spend"
    assert hot_request(body=b'{"amount": "20.50"}').json_body(SpendRequest).amount == Decimal("20.50")


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json", b'{"amount": NaN}'),
        ("application/json", b'{"amount": 10.005}'),
        ("application/json", b'{"amount": 1'),
        ("application/json", b""),
        ("application/json", b"[1]"),
        ("application/json", b'{"amount": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),  # RecursionError
        ("text/plain", b'{"amount": 1}'),
        ("application/x-www-form-urlencoded", b"amount=1"),
    ],
)
def test_a_body_fastapi_would_refuse_is_left_to_fastapi(content_type, body):
    assert hot_request({"Content-Type": content_type}, body).json_body(SpendRequest) is None


def test_headers_read_the_first_value_and_the_bearer_scheme_in_any_case():
    request = HotRequest({"headers": [(b"authorization", b"bearer abc"), (b"authorization", b"Bearer other")]}, b"", {})
    assert request.header(b"authorization") == "bearer abc"
    assert request.bearer_token() == "abc"
    assert hot_request({"Authorization": "Basic abc"}).bearer_token() is None
    assert hot_request({"Authorization": "Bearer "}).bearer_token() is None
    assert hot_request().bearer_token() is None


def test_a_body_is_read_whole_then_replayed_once():
    messages = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0)

    async def scenario():
        body = await read_body(receive)
        replay = replaying(body, receive)
        return body, await replay(), await replay()

    body, first, after = asyncio.run(scenario())
    assert body == b"abcd"
    assert first == {"type": "http.request", "body": b"abcd", "more_body": False}
    assert after == {"type": "http.disconnect"}


def test_a_client_that_leaves_mid_body_gives_no_body():
    messages = [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    assert asyncio.run(read_body(receive)) is None


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("SERVICE_API_KEY", "unit-test-service-key-0123456789")
    app = create_service_app(service="hot-test", title="t", description="t", settings=ServiceSettings(), lifespan=None)

    @app.post("/echo/{name}")
    async def echo(name: str, request: Request) -> dict:
        return {"answered_by": "fastapi", "name": name, "body": (await request.body()).decode()}

    @hot_route(app, "POST", "/echo/{name}")
    async def echo_hot(request: HotRequest):
        name = request.path_params["name"]
        if name == "refused":
            raise HTTPException(409, detail="Refused by the hot handler.", headers={"Retry-After": "2"})
        if name == "redis-down":
            raise RedisConnectionError("connection refused")
        if name == "decline":
            return None
        return json_answer({"answered_by": "hot", "name": name, "body": request.body.decode()})

    return ASGIClient(app)


class ASGIClient:
    """Requests straight into the app, each on its own event loop (no server, no lifespan)."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hot-test") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)


def test_a_hot_handler_answers_with_the_middleware_around_it(client):
    response = client.post("/echo/fast", content=b"payload", headers={"X-Request-ID": "req-1"})
    assert response.json() == {"answered_by": "hot", "name": "fast", "body": "payload"}
    assert response.headers["x-request-id"] == "req-1"
    metrics = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/echo/{name}",status="200"}' in metrics


def test_a_declined_request_reaches_the_fastapi_route_with_its_body(client):
    response = client.post("/echo/decline", content=b"the whole body")
    assert response.json() == {"answered_by": "fastapi", "name": "decline", "body": "the whole body"}


def test_errors_raised_by_a_hot_handler_get_the_usual_json_answers(client):
    refused = client.post("/echo/refused")
    assert (refused.status_code, refused.json()) == (409, {"detail": "Refused by the hot handler."})
    assert refused.headers["retry-after"] == "2"
    down = client.post("/echo/redis-down")
    assert (down.status_code, down.json()) == (503, {"detail": "The data store is unavailable; retry shortly."})


def test_the_body_limit_applies_to_hot_routes(client):
    response = client.post("/echo/big", content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 413
