"""Service defaults: the one call that gives each service its error shape, request ids, JSON logs,
body limit and health routes, so the four processes behave alike without four copies."""

import asyncio
import contextlib
import gc
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.clients import connect_redis
from shared.downstream import Downstream
from shared.errors import RETRY_SOON
from shared.hotpath import METHODS_WITH_BODY, HotRequest, HotRoute, HotRoutes, read_body, replaying
from shared.jsonbody import DecimalJSONRoute
from shared.metrics import HTTP_IN_FLIGHT, HttpMetrics, metrics_response
from shared.requestid import REQUEST_ID_HEADER, new_request_id, request_id_var
from shared.settings import ServiceSettings

ReadinessCheck = Callable[[], Awaitable[Any]]
MAX_ECHOED_EXPONENT = 30
log = logging.getLogger("service")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; fields passed with `extra=` (route, status, ...) are kept."""

    STANDARD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "request_id": request_id_var.get(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self.STANDARD_FIELDS})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # our own access line replaces it
    for uvicorn_logger in ("uvicorn", "uvicorn.error"):
        logging.getLogger(uvicorn_logger).handlers[:] = []
        logging.getLogger(uvicorn_logger).propagate = True
    return handler


class AccessLog:
    """The one line per request, in the same JSON shape as every other line but written straight
    to the log stream: through `logging` (caller lookup, record, formatter) it cost more CPU than
    a hot route's own work."""

    def __init__(self, service: str, handler: logging.StreamHandler) -> None:
        self.service = service
        self.handler = handler

    def write(self, method: str, route: str, status: int, duration: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        line = orjson.dumps({
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "service": self.service,
            "request_id": request_id_var.get(),
            "logger": log.name,
            "message": "request",
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration * 1000, 2),
        })
        with self.handler.lock:  # lines from other threads' log calls stay whole
            self.handler.stream.write(line.decode() + "\n")
            self.handler.stream.flush()


class PayloadTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"Request body is larger than {limit} bytes.")


def _json_error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class RequestContextMiddleware:
    """Pure ASGI (no per-request task or body copy): request id in and out, the body limit, the
    hot routes (shared/hotpath.py), and one access-log line with route template, status and
    duration."""

    def __init__(self, app, *, max_body_bytes: int, hot_routes: HotRoutes, access_log: AccessLog) -> None:
        self.app = app
        self.access_log = access_log
        self.http_metrics = HttpMetrics()
        self.max_body_bytes = max_body_bytes
        self.hot_routes = hot_routes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, declared_length = None, 0
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                declared_length = int(value)
        if not request_id or len(request_id) > 128 or not request_id.isprintable():
            request_id = new_request_id()
        request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        limit = self.max_body_bytes

        async def send_with_request_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        received = 0

        async def receive_within_limit():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        hot = self.hot_routes.match(scope["method"], scope["path"]) if self.hot_routes else None
        hot_template = None
        HTTP_IN_FLIGHT.inc()
        try:
            if declared_length > limit:  # refused before a byte of the body is read
                await _json_error(413, PayloadTooLarge(limit).detail)(scope, receive, send_with_request_id)
            elif hot is not None:
                hot_template = await self._serve_hot(*hot, scope, receive_within_limit, send_with_request_id)
            else:
                await self.app(scope, receive_within_limit, send_with_request_id)
        finally:
            HTTP_IN_FLIGHT.dec()
            duration = time.perf_counter() - started
            method = scope["method"]
            route = hot_template or getattr(scope.get("route"), "path", "unmatched")
            self.http_metrics.record(method, route, status, duration)
            self.access_log.write(method, route, status, duration)

    async def _serve_hot(self, route: HotRoute, path_params: dict, scope, receive, send) -> str | None:
        """Answer with the route's hot handler, or hand the request (body and all) to FastAPI
        when the handler declines. Returns the route template when the hot handler answered."""
        body = b""
        try:
            if scope["method"] in METHODS_WITH_BODY:
                body = await read_body(receive)
                if body is None:
                    return route.template  # the client left before sending its body
            response = await route.handler(HotRequest(scope, body, path_params))
        except HTTPException as refused:
            response = _json_error(refused.status_code, refused.detail, refused.headers)
        except (RedisConnectionError, RedisTimeoutError) as error:
            response = _redis_unavailable_response(error)
        if response is None:
            await self.app(scope, replaying(body, receive), send)
            return None
        await response(scope, receive, send)
        return route.template


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped, so any input echoed back (even a lone
    surrogate, which UTF-8 cannot encode) is still a valid body."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _echoed_decimal(value: Decimal) -> int | float | str:
    """A number from the body as FastAPI echoes it in a 422, except one of extreme magnitude
    (1e300000), which stays text: writing it out as an integer would hold the event loop for
    seconds, and json.dumps refuses integers of more than 4300 digits."""
    if value.is_finite() and abs(value.adjusted()) <= MAX_ECHOED_EXPONENT:
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    return str(value)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(exc.errors(), custom_encoder={Decimal: _echoed_decimal})
    return AsciiJSONResponse({"detail": errors}, status_code=422)


def _redis_unavailable_response(exc: Exception) -> JSONResponse:
    log.warning("redis unavailable: %s", type(exc).__name__)
    return _json_error(503, "The data store is unavailable; retry shortly.", RETRY_SOON)


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return _redis_unavailable_response(exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return _json_error(500, "Internal server error.")


@contextlib.asynccontextmanager
async def service_clients(app: FastAPI, settings: ServiceSettings, *, with_redis: bool = True) -> AsyncIterator:
    """The process's long-lived clients for its lifespan: Redis (or None) and a function that
    opens a `Downstream` to another service. Redis joins the readiness checks; everything is
    closed on the way out."""
    redis = connect_redis(settings) if with_redis else None
    if redis is not None:
        app.state.readiness["redis"] = redis.ping
    opened: list[Downstream] = []

    def downstream(name: str, base_urls: str) -> Downstream:
        opened.append(Downstream(name, base_urls, settings))
        return opened[-1]

    # What exists now lives as long as the process: keep it out of every garbage collection, and
    # collect the young generation less often (each request allocates a few hundred objects).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        yield redis, downstream
    finally:
        for service in opened:
            await service.aclose()
        if redis is not None:
            await redis.aclose()


@contextlib.asynccontextmanager
async def running_in_background(work: Coroutine) -> AsyncIterator[None]:
    """Run a service's periodic work (a sweep, an outbox) for as long as the service runs."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_service_app(
    *,
    service: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    lifespan,
) -> FastAPI:
    """A FastAPI app with the stack's defaults. The lifespan fills `app.state.readiness` with named
    checks that `/readyz` runs."""
    log_handler = configure_logging(service, settings.log_level)
    # No trailing-slash redirects: a redirect would name whatever host the request reached.
    app = FastAPI(
        title=title, description=description, version="1.0.0", lifespan=lifespan, redirect_slashes=False,
        # Our own Prometheus metrics and logs cover each request; FastAPI's OpenTelemetry hooks
        # would otherwise look up the tracer providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.router.route_class = DecimalJSONRoute
    app.state.settings = settings
    app.state.readiness = {}
    app.state.hot_routes = HotRoutes()
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        hot_routes=app.state.hot_routes,
        access_log=AccessLog(service, log_handler),
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "X-Next-Cursor", "Retry-After", "Idempotent-Replayed"],
        )
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(RedisConnectionError, _redis_unavailable)
    app.add_exception_handler(RedisTimeoutError, _redis_unavailable)
    app.add_exception_handler(Exception, _unexpected)

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics():
        return metrics_response()

    @app.get("/readyz", tags=["operations"], summary="Readiness: Redis and downstreams answer")
    async def readyz() -> JSONResponse:
        checks: dict[str, ReadinessCheck] = app.state.readiness
        names = list(checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(checks[name](), timeout=2.0) for name in names), return_exceptions=True
        )
        failing = [name for name, result in zip(names, results) if isinstance(result, BaseException)]
        if failing:
            return _json_error(503, f"Not ready: {', '.join(failing)} unavailable.", RETRY_SOON)
        return JSONResponse({"status": "ready", "checks": names})

    return app
