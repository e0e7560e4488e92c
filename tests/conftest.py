"""Test fixtures: a real PostgreSQL database and Redis, built once per run.

- The database ``reviewapp_test`` (override: REVIEWAPP_TEST_DATABASE_URL) is dropped, recreated
  and upgraded to head through the Alembic migrations, then seeded with the reference data.
- Each test runs inside a transaction that is rolled back at the end; code under test commits
  normally (``join_transaction_mode="create_savepoint"``).
- Redis database 13 (override: REVIEWAPP_TEST_REDIS_URL) is flushed at the start.
- Under ``CI=true`` a missing PostgreSQL or Redis fails the run; elsewhere the database tests fall
  back to SQLite and Redis tests are skipped, so a laptop without services can still run most.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import FlaskLoginClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reviewapp import create_app
from reviewapp.cli import seed_reference_data, upgrade_database
from reviewapp.db import recreate_postgres_database
from reviewapp.extensions import db as database
from tests.factories import bind_factories

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get(
    "REVIEWAPP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_test"
)
REDIS_URL = os.environ.get("REVIEWAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _postgres_available() -> bool:
    try:
        engine = create_engine(
            make_url(PG_URL).set(database="postgres"), connect_args={"connect_timeout": 3}
        )
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


def service_missing(name: str) -> None:
    """Fail under CI, skip elsewhere (CI must never silently skip service tests)."""
    message = f"{name} is not reachable"
    if IN_CI:
        pytest.fail(message + " (CI=true: tests that need it fail instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of the freshly migrated test database."""
    if _postgres_available():
        recreate_postgres_database(PG_URL)
        url = PG_URL
    else:
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (CI=true)")
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """The app under test (jobs inline, memory email, CSRF on)."""
    application = create_app("testing", DATABASE_URL=database_url, REDIS_URL=None)
    application.test_client_class = FlaskLoginClient
    with application.app_context():
        seed_reference_data(
            database.session,
            application.config["SEED_DIR"]
            and __import__("pathlib").Path(application.config["SEED_DIR"]),
        )
        database.commit()
    return application


@pytest.fixture(autouse=True)
def fresh_rate_limits(request: pytest.FixtureRequest) -> None:
    """Each test starts with empty rate-limit counters in the shared app (its memory storage
    would otherwise carry one test's log-ins into the next: 10 log-ins per minute from
    127.0.0.1 is soon reached by a fast run of the browser tests)."""
    if "app" in request.fixturenames:
        from reviewapp.ratelimit import EXTENSION_KEY

        request.getfixturevalue("app").extensions[EXTENSION_KEY].reset()


@pytest.fixture()
def db(app: Flask) -> Iterator[Session]:
    """A session for test setup and assertions, sharing one rolled-back transaction with the
    sessions the app opens while serving requests."""
    state = database.state(app)
    connection = state.engine.connect()
    transaction = connection.begin()
    state.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    bind_factories(session)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()
        state.sessionmaker = type(state.sessionmaker)(bind=state.engine, expire_on_commit=False)
        from reviewapp.notifications.email import OUTBOX_MEMORY

        OUTBOX_MEMORY.clear()


@pytest.fixture()
def committed_db(app: Flask) -> Iterator[Session]:
    """For tests that need real commits across connections (concurrency, live server).
    Every table is emptied and the reference data re-seeded afterwards."""
    session = Session(bind=database.state(app).engine, expire_on_commit=False)
    bind_factories(session)
    try:
        yield session
    finally:
        session.close()
        _reset_database(app)


def _reset_database(app: Flask) -> None:
    from reviewapp.models import Base

    with database.state(app).engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            conn.execute(text("PRAGMA foreign_keys=ON"))
    with app.app_context():
        from pathlib import Path

        seed_reference_data(database.session, Path(app.config["SEED_DIR"]))
        database.commit()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A flushed Redis database for this run."""
    from redis import Redis

    try:
        conn = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        conn.flushdb()
        conn.close()
    except Exception:  # noqa: BLE001
        service_missing(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture()
def client(app: Flask, db: Session) -> FlaskClient:
    """An anonymous test client."""
    return app.test_client()


@pytest.fixture()
def login(app: Flask, db: Session) -> Any:
    """``login(user)`` -> a test client logged in as ``user`` (Flask-Login's test client)."""

    def _login(user: Any) -> FlaskClient:
        db.flush()
        return app.test_client(user=user)

    return _login


_CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


_ONCE_RE = re.compile(r'name="once" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/policies") -> str:
    """Read a CSRF token from a rendered form (CSRF stays on in tests)."""
    return _form_tokens(client, path)[0]


def _form_tokens(client: FlaskClient, path: str) -> tuple[str, str | None]:
    """The CSRF token and, when the page has one, the first one-shot ``once`` token."""
    page = client.get(path).get_data(as_text=True)
    once = _ONCE_RE.search(page)
    return _csrf_from(page, path), once.group(1) if once else None


def _csrf_from(page: str, path: str) -> str:
    match = _CSRF_RE.search(page)
    if match is None:
        # pages without a form: the base layout's log-out form carries one for logged-in users
        raise AssertionError(f"no CSRF token on {path}")
    return match.group(1) or match.group(2)


def post_form(
    client: FlaskClient,
    path: str,
    data: dict[str, Any] | None = None,
    *,
    token_from: str | None = None,
    **kwargs: Any,
) -> Any:
    """POST a form with a valid CSRF token read from ``token_from`` (default: /policies), and
    the page's one-shot ``once`` token when it has one (forms that show a secret)."""
    token, once = _form_tokens(client, token_from or "/policies")
    extra = {"once": once} if once is not None else {}
    return client.post(path, data={**extra, **(data or {}), "csrf_token": token}, **kwargs)
