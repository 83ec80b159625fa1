"""The contract's walkthrough, step by step, as a client follows it (used on every kind of stack)."""

CONTRACT_ITEMS = [
    {"id": 1, "name": "The Great Gatsby (Book)", "price": 50.0},
    {"id": 2, "name": "Coffee Mug", "price": 25.5},
    {"id": 3, "name": "Notebook (Premium)", "price": 10.0},
    {"id": 4, "name": "Mystery Box (Low Risk)", "price": 49.99},
    {"id": 5, "name": "Pen Set (Ballpoint)", "price": 15.0},
]


def walk_through_the_contract(api) -> None:
    registered = api.post("/auth/register", json={"username": "testuser", "password": "securepassword123"})
    assert (registered.status_code, registered.json()) == (201, {"username": "testuser"})

    login = api.post("/auth/login", data={"username": "testuser", "password": "securepassword123"})
    assert login.status_code == 200
    assert login.json()["token_type"] == "bearer" and login.json()["access_token"].count(".") == 2
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

    balance = api.get("/wallet/balance", headers=auth)
    assert balance.status_code == 200
    user_id = balance.json()["user_id"]
    assert isinstance(user_id, int)
    assert balance.json() == {"user_id": user_id, "username": "testuser", "balance": 100.0}
    assert balance.content == f'{{"user_id":{user_id},"username":"testuser","balance":100.0}}'.encode()

    items = api.get("/items/list")
    assert items.status_code == 200
    assert [{k: item[k] for k in ("id", "name", "price")} for item in items.json()[:5]] == CONTRACT_ITEMS

    bought = api.post("/items/buy/1", headers=auth)
    assert (bought.status_code, bought.json()) == (200, {"user_id": user_id, "username": "testuser", "balance": 50.0})

    spent = api.post("/wallet/spend", headers=auth, json={"amount": 20.50, "description": "Taxi ride home"})
    assert (spent.status_code, spent.json()) == (200, {"user_id": user_id, "username": "testuser", "balance": 29.5})

    users = api.get("/users", params={"limit": 1000}).json()
    assert {"id": user_id, "username": "testuser", "balance": 29.5} in users
    assert all(set(user) == {"id", "username", "balance"} for user in users)

    mine = [entry for entry in api.get("/transactions", params={"limit": 1000}).json() if entry["user_id"] == user_id]
    assert [(e["type"], e["amount"], e["description"], e["item_id"]) for e in mine] == [
        ("REGISTER", 100.0, "Initial Wallet Setup", None),
        ("BUY", 50.0, "Purchased: The Great Gatsby (Book)", 1),
        ("SPEND", 20.5, "Taxi ride home", None),
    ]
    assert all({"id", "user_id", "timestamp", "type", "amount", "description", "item_id"} <= set(e) for e in mine)
