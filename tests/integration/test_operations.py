"""What an operator relies on: health, metrics, request ids, logs, one error shape, limits, CORS."""

import uuid

import httpx
import pytest

from tests.integration.conftest import register_and_login, unique_name, wait_for

SERVICES = ["gateway", "auth", "wallet", "catalog"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_process_answers_liveness_and_readiness(stack, service):
    assert httpx.get(stack.url(service) + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(stack.url(service) + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_the_gateway_is_not_ready_while_a_downstream_is_down_and_names_it(stack):
    stack.stop_service("catalog")
    try:
        response = httpx.get(stack.url() + "/readyz")
        assert (response.status_code, response.json()) == (503, {"detail": "Not ready: catalog unavailable."})
    finally:
        stack.start_service("catalog")
    assert httpx.get(stack.url() + "/readyz").status_code == 200


def metric(stack, service: str, line_start: str) -> float:
    text = httpx.get(stack.url(service) + "/metrics").text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def test_metrics_count_requests_and_money_by_kind(api, stack):
    auth = register_and_login(api)
    debits = metric(stack, "wallet", 'wallet_debits_total{type="SPEND"}')
    refused = metric(stack, "wallet", 'wallet_refused_debits_total{reason="insufficient"}')
    purchases = metric(stack, "gateway", 'purchases_total{outcome="200"}')
    api.post("/wallet/spend", headers=auth, json={"amount": 1})
    api.post("/wallet/spend", headers=auth, json={"amount": 1000})
    api.post("/items/buy/3", headers=auth)
    assert metric(stack, "wallet", 'wallet_debits_total{type="SPEND"}') == debits + 1
    assert metric(stack, "wallet", 'wallet_refused_debits_total{reason="insufficient"}') == refused + 1
    assert metric(stack, "gateway", 'purchases_total{outcome="200"}') == purchases + 1
    assert metric(stack, "gateway", 'http_requests_total{method="POST",route="/wallet/spend",status="200"}') >= 1
    assert metric(stack, "wallet", 'http_request_duration_seconds_count{method="POST",route="/wallet/spend"}') >= 2
    for service in SERVICES:
        assert "http_requests_in_flight" in httpx.get(stack.url(service) + "/metrics").text


def test_failed_logins_are_counted(api, stack):
    before = metric(stack, "auth", "auth_login_failures_total")
    api.post("/auth/login", data={"username": unique_name("nobody"), "password": "wrong password"})
    assert metric(stack, "auth", "auth_login_failures_total") == before + 1


def test_a_client_request_id_is_returned_and_reaches_every_service_log(api, stack):
    auth = register_and_login(api)
    request_id = f"req-{uuid.uuid4().hex}"
    response = api.post("/items/buy/3", headers={**auth, "X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    for service in ("gateway", "wallet", "catalog"):
        log = stack.data_dir / "logs" / f"{service}.log"
        # A service writes its access line just after it answers: give it a moment.
        assert wait_for(lambda log=log: request_id in log.read_text()), service
    minted = api.get("/items/list").headers["x-request-id"]
    assert len(minted) == 32


def test_no_password_token_or_hash_ever_reaches_a_log(api, stack):
    password = f"pw-{uuid.uuid4().hex}"
    name = unique_name()
    auth = register_and_login(api, name, password)
    api.post("/auth/login", data={"username": name, "password": password + "-wrong"})
    api.get("/wallet/balance", headers=auth)
    token = auth["Authorization"].split()[1]
    logs = "".join((stack.data_dir / "logs" / f"{service}.log").read_text() for service in SERVICES)
    assert password not in logs and token not in logs and token.split(".")[2] not in logs
    assert "$argon2" not in logs and "$2b$" not in logs


@pytest.mark.parametrize("service", SERVICES)
def test_errors_are_json_with_a_detail_and_never_html(stack, service):
    missing = httpx.get(stack.url(service) + "/no/such/path")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong_method = httpx.delete(stack.url(service) + "/healthz")
    assert wrong_method.status_code == 405 and "detail" in wrong_method.json()


def test_a_malformed_json_body_is_422_json(api):
    auth = register_and_login(api)
    response = api.post("/wallet/spend", headers={**auth, "content-type": "application/json"}, content=b"{nope")
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize("service", ["gateway", "wallet"])
def test_a_body_over_64_kib_is_413_before_it_is_read(stack, service):
    big = b'{"amount": 1, "description": "' + b"x" * (64 * 1024) + b'"}'
    declared = httpx.post(stack.url(service) + "/wallet/spend", content=big, headers={"content-type": "application/json"})
    assert (declared.status_code, declared.json()) == (413, {"detail": "Request body is larger than 65536 bytes."})

    def chunks():
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    streamed = httpx.post(stack.url(service) + "/wallet/spend", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_a_trailing_slash_is_404_never_a_redirect(api):
    auth = register_and_login(api)
    response = api.get("/wallet/balance/", headers=auth)
    assert response.status_code == 404 and "location" not in response.headers


def test_cors_allows_only_the_configured_origins(api):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = api.options("/wallet/spend", headers={"Origin": "https://shop.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    other = api.options("/wallet/spend", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    simple = api.get("/items/list", headers={"Origin": "https://evil.example"})
    assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
