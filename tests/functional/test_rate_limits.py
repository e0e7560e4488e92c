"""Rate limits: the API per token and per client address, log-in per address and per account,
429 with Retry-After (JSON under /api/, an HTML page that says when to retry), and one count
shared by every app process when the counters live in Redis.

Each test builds its own app with small limits (``make_app``), bound to the test's rolled-back
transaction, so the counts of the suite's shared app are never touched.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask_login import FlaskLoginClient
from limits.storage import MemoryStorage, RedisStorage

from reviewapp import create_app
from reviewapp.auth.services import issue_token
from reviewapp.extensions import db as database
from reviewapp.ratelimit import limiter
from tests.conftest import csrf_token
from tests.factories import PASSWORD, UserFactory

API = "/api/v1/applications"


@pytest.fixture()
def make_app(app: Flask, db: Any) -> Iterator[Callable[..., Flask]]:
    """``make_app(**config)`` -> a new app (memory counters unless REDIS_URL is given) whose
    database sessions join the test's transaction."""
    made: list[Flask] = []

    def _make(**overrides: Any) -> Flask:
        settings = {"DATABASE_URL": app.config["DATABASE_URL"], "REDIS_URL": None, **overrides}
        fresh = create_app("testing", **settings)
        fresh.test_client_class = FlaskLoginClient
        database.state(fresh).sessionmaker.configure(
            bind=db.bind, join_transaction_mode="create_savepoint"
        )
        made.append(fresh)
        return fresh

    yield _make
    for fresh in made:
        if fresh.config["RATELIMIT_ENABLED"]:
            with fresh.app_context():
                limiter.reset()  # Redis: deletes only this app's prefixed counters
        database.state(fresh).engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def from_address(address: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": address}}


def assert_429(response: Any, window_seconds: int) -> int:
    """The common 429 shape; returns Retry-After (whole seconds within the window)."""
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window_seconds
    return retry_after


def assert_api_429(response: Any, window_seconds: int, says: str) -> None:
    retry_after = assert_429(response, window_seconds)
    error = response.json["error"]
    assert error["code"] == "rate_limited" and error["fields"] == {}
    assert says in error["message"] and f"Try again in {retry_after} second" in error["message"]


def test_the_api_is_limited_per_token(make_app, db) -> None:
    limited = make_app(RATELIMIT_API="3 per minute", RATELIMIT_API_IP="100 per minute")
    user = UserFactory()
    first, second = issue_token(db, user, name="a"), issue_token(db, user, name="b")
    client = limited.test_client()
    for _ in range(3):
        assert client.get(API, headers=bearer(first)).status_code == 200
    assert_api_429(client.get(API, headers=bearer(first)), 60, "with this token")
    # writes count against the same budget, on every route of the API
    blocked = client.post(API, json={"title": "x"}, headers=bearer(first))
    assert_api_429(blocked, 60, "with this token")
    # another token from the same address has its own budget
    assert client.get(API, headers=bearer(second)).status_code == 200


def test_the_api_is_limited_per_address(make_app, db) -> None:
    limited = make_app(RATELIMIT_API="100 per minute", RATELIMIT_API_IP="4 per minute")
    user = UserFactory()
    tokens = [issue_token(db, user, name=f"t{n}") for n in range(4)]
    client = limited.test_client()
    assert client.get(API, headers=bearer(tokens[0])).status_code == 200
    assert client.get(API, headers=bearer(tokens[1])).status_code == 200
    assert client.get(API, headers=bearer("ra_0123456789ab_not-a-real-secret")).status_code == 401
    assert client.get("/api/v1/vocabularies").status_code == 200  # no token at all
    # a fresh token does not help: the address has used its budget
    assert_api_429(client.get(API, headers=bearer(tokens[2])), 60, "from your address")
    assert client.get(API, headers=bearer(tokens[3]), **from_address("10.9.8.7")).status_code == 200


def _login(client: Any, email: str, password: str, address: str = "127.0.0.1") -> Any:
    token = csrf_token(client, "/login")
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        **from_address(address),
    )


def test_login_is_limited_per_address_even_with_the_right_password(make_app, db) -> None:
    limited = make_app()  # the configured default: 10 attempts per minute per address
    assert limited.config["RATELIMIT_LOGIN"] == "10 per minute"
    user = UserFactory()
    client = limited.test_client()
    for _ in range(10):
        response = _login(client, user.email, "wrong password")
        assert response.status_code == 200 and "Email or password is wrong" in response.text
    for _ in range(3):  # showing the form is not an attempt
        assert client.get("/login").status_code == 200

    eleventh = _login(client, user.email, PASSWORD)
    retry_after = assert_429(eleventh, 60)
    page = eleventh.get_data(as_text=True)
    assert eleventh.mimetype == "text/html" and "Slow down" in page
    assert f"Too many log-in attempts from your address. Try again in {retry_after} second" in page
    assert client.get("/account").status_code == 302  # not logged in

    # the account itself is not locked: the same password works from another address
    elsewhere = limited.test_client()
    assert _login(elsewhere, user.email, PASSWORD, address="10.0.0.5").status_code == 302


def test_login_is_limited_per_account_from_any_address(make_app, db) -> None:
    limited = make_app(RATELIMIT_LOGIN="100 per minute", RATELIMIT_LOGIN_ACCOUNT="3 per hour")
    user = UserFactory(email="target@example.com")
    client = limited.test_client()
    for n, email in enumerate(["target@example.com", "TARGET@example.com", " target@example.com"]):
        assert _login(client, email, "guess", address=f"10.0.0.{n + 1}").status_code == 200
    blocked = _login(client, user.email, PASSWORD, address="10.0.0.99")
    retry_after = assert_429(blocked, 3600)
    page = blocked.get_data(as_text=True)
    assert "Too many log-in attempts for this account." in page
    assert re.search(r"Try again in \d+ minutes", page) and retry_after > 60
    # another account from the same addresses is unaffected
    other = UserFactory()
    assert _login(client, other.email, PASSWORD, address="10.0.0.1").status_code == 302


def test_limits_are_shared_by_every_app_when_counted_in_redis(make_app, db, redis_url) -> None:
    prefix = f"reviewapp-test-ratelimit-{uuid.uuid4().hex[:8]}"
    settings = {
        "REDIS_URL": redis_url,
        "RATELIMIT_KEY_PREFIX": prefix,
        "RATELIMIT_API": "4 per minute",
    }
    first, second = make_app(**settings), make_app(**settings)
    for instance in (first, second):
        with instance.app_context():
            assert isinstance(limiter.storage, RedisStorage)
    token = issue_token(db, UserFactory())
    one, two = first.test_client(), second.test_client()
    for client in (one, two, one, two):
        assert client.get(API, headers=bearer(token)).status_code == 200
    assert_api_429(one.get(API, headers=bearer(token)), 60, "with this token")
    assert_api_429(two.get(API, headers=bearer(token)), 60, "with this token")

    # by contrast, apps counting in their own memory do not share: each allows the full budget
    apart = [make_app(RATELIMIT_API="4 per minute") for _ in range(2)]
    for instance in apart:
        with instance.app_context():
            assert isinstance(limiter.storage, MemoryStorage)
        client = instance.test_client()
        for _ in range(4):
            assert client.get(API, headers=bearer(token)).status_code == 200


def test_limits_can_be_switched_off(make_app, db) -> None:
    unlimited = make_app(RATELIMIT_ENABLED=False, RATELIMIT_API="1 per minute")
    token = issue_token(db, UserFactory())
    client = unlimited.test_client()
    for _ in range(3):
        assert client.get(API, headers=bearer(token)).status_code == 200


def test_sign_up_is_limited_per_address(make_app, db) -> None:
    """Sign-up says when an email already has an account (so the person logs in instead);
    limited per address, it cannot be used to test addresses in bulk or to mass-create
    organizations."""
    limited = make_app(RATELIMIT_REGISTER="3 per hour")
    assert make_app().config["RATELIMIT_REGISTER"] == "10 per hour"  # the default
    taken = UserFactory()
    client = limited.test_client()

    def sign_up(email: str, address: str = "127.0.0.1") -> Any:
        token = csrf_token(client, "/register")
        return client.post(
            "/register",
            data={
                "name": "Probe",
                "email": email,
                "password": "a long enough password 1",
                "confirm": "a long enough password 1",
                "organization": f"Org {email}",
                "csrf_token": token,
            },
            **from_address(address),
        )

    for _ in range(3):
        assert sign_up(taken.email).status_code == 422  # the form again: the email is taken
    fourth = sign_up(taken.email)
    assert_429(fourth, 3600)
    page = fourth.get_data(as_text=True)
    assert "Slow down" in page and "Too many sign-up attempts from your address." in page
    assert "Try again in 60 minutes." in page
    assert sign_up(taken.email, address="10.0.0.9").status_code == 422  # another address


def _change_password(client: Any, current: str, address: str = "127.0.0.1") -> Any:
    token = csrf_token(client, "/account")
    return client.post(
        "/account/password",
        data={
            "current_password": current,
            "password": "a-brand-new-passphrase",
            "confirm": "a-brand-new-passphrase",
            "csrf_token": token,
        },
        **from_address(address),
    )


def test_password_change_is_limited_per_account_like_log_in(make_app, db) -> None:
    """Changing the password checks the current one: an open session must not be a way to
    guess it at speed, from one address or many."""
    limited = make_app(RATELIMIT_LOGIN="100 per minute", RATELIMIT_LOGIN_ACCOUNT="3 per hour")
    user = UserFactory()
    client = limited.test_client(user=user)
    for n in range(3):
        wrong = _change_password(client, "a guess", address=f"10.0.1.{n + 1}")
        assert wrong.status_code == 422 and "This is not your current password." in wrong.text
    blocked = _change_password(client, PASSWORD, address="10.0.1.99")
    assert_429(blocked, 3600)
    assert "Too many password-change attempts for this account." in blocked.text
    assert _login(limited.test_client(), user.email, PASSWORD).status_code == 302  # unchanged
    # another account from the same address is unaffected
    other = limited.test_client(user=UserFactory())
    assert _change_password(other, PASSWORD, address="10.0.1.1").status_code == 302


def test_password_change_is_limited_per_address(make_app, db) -> None:
    limited = make_app(RATELIMIT_LOGIN="2 per minute", RATELIMIT_LOGIN_ACCOUNT="100 per hour")
    clients = [limited.test_client(user=UserFactory()) for _ in range(3)]
    assert _change_password(clients[0], "a guess").status_code == 422
    assert _change_password(clients[1], "a guess").status_code == 422
    blocked = _change_password(clients[2], PASSWORD)
    assert_429(blocked, 60)
    assert "Too many password-change attempts from your address." in blocked.text
    assert _change_password(clients[2], PASSWORD, address="10.0.2.1").status_code == 302
