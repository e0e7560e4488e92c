"""Fixtures of the security tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask_login import FlaskLoginClient

from reviewapp import create_app
from reviewapp.extensions import db as database
from reviewapp.ratelimit import current_limiter


@pytest.fixture()
def make_app(app: Flask, db: Any) -> Iterator[Callable[..., Flask]]:
    """``make_app(config, **overrides)`` -> a new app of that settings class whose database
    sessions join the test's transaction (memory rate-limit counters, no Redis)."""
    made: list[Flask] = []

    def _make(config: str = "testing", **overrides: Any) -> Flask:
        settings = {"DATABASE_URL": app.config["DATABASE_URL"], "REDIS_URL": None, **overrides}
        fresh = create_app(config, **settings)
        fresh.test_client_class = FlaskLoginClient
        database.state(fresh).sessionmaker.configure(
            bind=db.bind, join_transaction_mode="create_savepoint"
        )
        made.append(fresh)
        return fresh

    yield _make
    for fresh in made:
        with fresh.app_context():
            current_limiter().reset()
        database.state(fresh).engine.dispose()
