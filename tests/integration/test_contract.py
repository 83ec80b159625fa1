"""The contract's walkthrough and error table, against the gateway, byte for byte where it says so."""

import pytest

from tests.integration.conftest import balance_of, register_and_login, unique_name
from tests.integration.walkthrough import walk_through_the_contract

BEARER = {"www-authenticate": "Bearer"}


def test_the_walkthrough_gives_the_contract_responses(api):
    walk_through_the_contract(api)


def test_a_duplicate_username_is_refused_with_the_contract_message(api):
    name = unique_name()
    assert api.post("/auth/register", json={"username": name, "password": "123456"}).status_code == 201
    again = api.post("/auth/register", json={"username": name, "password": "something else"})
    assert (again.status_code, again.json()) == (400, {"detail": "Username already registered"})


def test_a_password_shorter_than_six_is_refused_with_422(api):
    response = api.post("/auth/register", json={"username": unique_name(), "password": "12345"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize("password", ["wrong password", ""])
def test_a_wrong_password_is_401_with_the_contract_body_and_challenge(api, password):
    name = unique_name()
    register_and_login(api, name, "right password")
    response = api.post("/auth/login", data={"username": name, "password": password or "x"})
    assert (response.status_code, response.json()) == (401, {"detail": "Incorrect username or password"})
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_unknown_user_gets_the_same_401_as_a_wrong_password(api):
    response = api.post("/auth/login", data={"username": unique_name("ghost"), "password": "whatever1"})
    assert (response.status_code, response.json()) == (401, {"detail": "Incorrect username or password"})


@pytest.mark.parametrize(
    "method, path", [("GET", "/wallet/balance"), ("POST", "/wallet/spend"), ("POST", "/items/buy/1")]
)
def test_bearer_endpoints_without_a_token_say_not_authenticated(api, method, path):
    response = api.request(method, path, json={"amount": 1})
    assert (response.status_code, response.json()) == (401, {"detail": "Not authenticated"})
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "method, path", [("GET", "/wallet/balance"), ("POST", "/wallet/spend"), ("POST", "/items/buy/1")]
)
def test_bearer_endpoints_with_a_malformed_token_say_could_not_validate(api, method, path):
    response = api.request(method, path, json={"amount": 1}, headers={"Authorization": "Bearer not.a.jwt"})
    assert (response.status_code, response.json()) == (401, {"detail": "Could not validate credentials"})
    assert response.headers["www-authenticate"] == "Bearer"


def test_spending_more_than_the_balance_is_400_and_changes_nothing(api):
    auth = register_and_login(api)
    response = api.post("/wallet/spend", headers=auth, json={"amount": 100.01})
    assert (response.status_code, response.json()) == (400, {"detail": "Insufficient funds in wallet."})
    assert balance_of(api, auth) == 100.0


@pytest.mark.parametrize("amount", [0, -5, "-0.00"])
def test_a_spend_of_zero_or_less_is_422(api, amount):
    auth = register_and_login(api)
    response = api.post("/wallet/spend", headers=auth, json={"amount": amount})
    assert response.status_code == 422
    assert balance_of(api, auth) == 100.0


def test_a_spend_without_description_is_recorded_as_general_spend(api):
    auth = register_and_login(api)
    assert api.post("/wallet/spend", headers=auth, json={"amount": 1}).json()["balance"] == 99.0
    assert api.get("/wallet/transactions", headers=auth).json()["transactions"][0]["description"] == "General Spend"


def test_buying_an_unknown_item_is_404_with_the_contract_message(api):
    auth = register_and_login(api)
    response = api.post("/items/buy/999", headers=auth)
    assert (response.status_code, response.json()) == (404, {"detail": "Item with ID 999 not found."})
    assert balance_of(api, auth) == 100.0


def test_buying_without_enough_money_is_400_and_changes_nothing(api):
    auth = register_and_login(api)
    response = api.post("/items/buy/10", headers=auth)
    assert (response.status_code, response.json()) == (400, {"detail": "Insufficient funds in wallet."})
    assert balance_of(api, auth) == 100.0


@pytest.mark.parametrize("service", ["gateway", "auth", "wallet", "catalog"])
def test_every_service_serves_its_own_swagger_ui_and_openapi(stack, service):
    import httpx

    docs = httpx.get(stack.url(service) + "/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert httpx.get(stack.url(service) + "/openapi.json").json()["openapi"].startswith("3.")


def test_the_gateway_documents_every_contract_path(api):
    paths = api.get("/openapi.json").json()["paths"]
    for path in ["/auth/register", "/auth/login", "/wallet/balance", "/wallet/spend", "/items/list",
                 "/items/buy/{item_id}", "/users", "/transactions"]:
        assert path in paths
