"""Hot paths: the busiest routes answered without FastAPI's per-request machinery.

Measured on this stack, FastAPI's routing, dependency solving and body handling cost more CPU
per request than the work the busiest routes do. A hot handler answers the common case of its
route directly and returns None for anything else (a body that does not validate, a bad
header), which the route's FastAPI endpoint then answers with its usual errors. A handler may
therefore return None only before it has changed anything. It may also raise an HTTPException
(a refused token, say), answered as FastAPI would.

Hot handlers run inside `RequestContextMiddleware`, so request ids, the body limit, metrics and
the access log apply to them as to every route; the FastAPI route stays the documented one."""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import orjson
from fastapi import FastAPI, Response
from pydantic import BaseModel, ValidationError

from shared.jsonbody import loads_exact

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
Model = TypeVar("Model", bound=BaseModel)


@dataclass(slots=True)
class HotRequest:
    scope: dict
    body: bytes
    path_params: dict[str, str]

    @property
    def app(self) -> FastAPI:
        return self.scope["app"]

    def header(self, name: bytes) -> str | None:
        """The first value of a header (names are lowercase bytes), as every route reads it."""
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    def bearer_token(self) -> str | None:
        scheme, _, token = (self.header(b"authorization") or "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None

    def json_body(self, model: type[Model]) -> Model | None:
        """The body as `model`, read exactly as FastAPI's routes read it, or None when it is not a
        valid JSON body of that shape (the FastAPI route then answers 422)."""
        content_type = self.header(b"content-type")
        if content_type is not None and content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        try:
            return model.model_validate(loads_exact(self.body))
        except (ValueError, ValidationError, RecursionError):  # e.g. JSON nested a thousand deep
            return None

    def int_param(self, name: str) -> int | None:
        """A path parameter that is plainly a positive decimal number, else None."""
        raw = self.path_params[name]
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


async def read_body(receive) -> bytes | None:
    """The whole request body, or None when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replaying(body: bytes, receive):
    """`receive` for FastAPI after a hot handler declined: the body already read, then the rest."""
    replayed = False

    async def receive_again():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


HotHandler = Callable[[HotRequest], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True)
class HotRoute:
    method: str
    template: str  # the FastAPI route's path, which also labels metrics and logs
    pattern: re.Pattern
    handler: HotHandler


class HotRoutes:
    def __init__(self) -> None:
        self._routes: list[HotRoute] = []

    def __bool__(self) -> bool:
        return bool(self._routes)

    def add(self, method: str, template: str, handler: HotHandler) -> None:
        pattern = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
        self._routes.append(HotRoute(method, template, pattern, handler))

    def match(self, method: str, path: str) -> tuple[HotRoute, dict[str, str]] | None:
        for route in self._routes:
            if route.method == method:
                found = route.pattern.match(path)
                if found:
                    return route, found.groupdict()
        return None


def json_answer(content, headers: dict | None = None) -> Response:
    """A 200 JSON answer serialised with orjson, for the routes that answer most often."""
    return Response(orjson.dumps(content), media_type="application/json", headers=headers)


def hot_route(app: FastAPI, method: str, template: str) -> Callable[[HotHandler], HotHandler]:
    """Register a hot handler for the app's route `method template`."""

    def register(handler: HotHandler) -> HotHandler:
        app.state.hot_routes.add(method, template, handler)
        return handler

    return register
