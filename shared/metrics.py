"""Prometheus metrics: HTTP traffic of every service (recorded by the shared middleware) and the
domain counters that say what happened to the money."""

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response

HTTP_REQUESTS = Counter("http_requests_total", "Requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer a request", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "Requests being answered now")

DEBITS = Counter("wallet_debits_total", "Debits applied", ["type"])
CREDITS = Counter("wallet_credits_total", "Credits applied", ["type"])
REFUSED_DEBITS = Counter("wallet_refused_debits_total", "Money movements refused", ["reason"])
IDEMPOTENT_REPLAYS = Counter("idempotent_replays_total", "Requests answered from an idempotency record")
PURCHASES = Counter("purchases_total", "Purchases by outcome (HTTP status the client got)", ["outcome"])
LOGIN_FAILURES = Counter("auth_login_failures_total", "Logins refused for a wrong username or password")
THROTTLED_LOGINS = Counter("auth_throttled_logins_total", "Logins refused with 429")


class HttpMetrics:
    """Records each answered request. The labelled series are looked up once and kept: the
    labels are route templates and statuses, a small fixed set, and `labels()` on every
    request was a measurable part of a hot route's CPU."""

    def __init__(self) -> None:
        self._answered: dict[tuple[str, str, int], Counter] = {}
        self._latency: dict[tuple[str, str], Histogram] = {}

    def record(self, method: str, route: str, status: int, duration: float) -> None:
        answered = self._answered.get((method, route, status))
        if answered is None:
            answered = self._answered[method, route, status] = HTTP_REQUESTS.labels(method, route, status)
        latency = self._latency.get((method, route))
        if latency is None:
            latency = self._latency[method, route] = HTTP_LATENCY.labels(method, route)
        answered.inc()
        latency.observe(duration)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
