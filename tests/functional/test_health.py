"""Health probes: /healthz (process up) and /readyz (database and Redis answer)."""

from __future__ import annotations

import pytest

from reviewapp import create_app as _create_app
from reviewapp.extensions import db as database

_apps: list = []


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """create_app, with the app's pooled connections closed after the test."""
    app = _create_app(*args, **kwargs)
    _apps.append(app)
    return app


@pytest.fixture(autouse=True)
def _dispose_engines():  # noqa: ANN202
    yield
    while _apps:
        database.state(_apps.pop()).engine.dispose()


DEAD_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # nothing listens on port 1
DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_answers_without_touching_the_database() -> None:
    app = create_app("testing", DATABASE_URL=DEAD_PG, REDIS_URL=DEAD_REDIS)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_reports_each_check(app, db) -> None:
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert "redis" not in body["checks"]  # no REDIS_URL: jobs run inline, nothing to check


def test_readyz_checks_redis_when_configured(database_url, redis_url) -> None:
    app = create_app("testing", DATABASE_URL=database_url, REDIS_URL=redis_url)
    body = app.test_client().get("/readyz").get_json()
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["status"] == "ok"


def test_readyz_names_a_down_database_with_503_and_no_trace(redis_url) -> None:
    app = create_app("testing", DATABASE_URL=DEAD_PG, REDIS_URL=redis_url)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"] == {"status": "error", "error": "OperationalError"}
    assert body["checks"]["redis"]["status"] == "ok"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "127.0.0.1" not in text


def test_readyz_names_a_down_redis(database_url) -> None:
    app = create_app("testing", DATABASE_URL=database_url, REDIS_URL=DEAD_REDIS)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "error"


def test_probes_are_not_redirected_to_https_in_production(database_url) -> None:
    app = create_app(
        "production", DATABASE_URL=database_url, SECRET_KEY="x" * 40, LOG_FORMAT="text"
    )
    client = app.test_client()
    for path in ("/healthz", "/readyz"):
        response = client.get(path, base_url="http://backend.internal")
        assert response.status_code == 200, path
    # everything else still goes to https
    assert client.get("/login", base_url="http://backend.internal").status_code == 302


def test_probes_are_exempt_from_a_default_rate_limit(database_url) -> None:
    # an operator may set a site-wide default limit; balancers probing every second must pass
    app = create_app("testing", DATABASE_URL=database_url, RATELIMIT_DEFAULT="2 per minute")
    client = app.test_client()
    assert [client.get("/healthz").status_code for _ in range(4)] == [200] * 4
    assert [client.get("/readyz").status_code for _ in range(4)] == [200] * 4
    assert [client.get("/login").status_code for _ in range(3)] == [200, 200, 429]


def _seen_by_view(app) -> dict:  # noqa: ANN001
    seen: dict = {}

    @app.get("/_probe_env")
    def _probe_env():  # noqa: ANN202
        from flask import request

        seen.update(addr=request.remote_addr, scheme=request.scheme)
        return "ok"

    app.test_client().get(
        "/_probe_env", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    )
    return seen


def test_trusted_proxy_headers_set_the_client_address_and_scheme(database_url) -> None:
    behind_proxy = create_app("testing", DATABASE_URL=database_url, TRUSTED_PROXIES=1)
    assert _seen_by_view(behind_proxy) == {"addr": "203.0.113.9", "scheme": "https"}
    # without trusted proxies a client cannot forge its address
    direct = create_app("testing", DATABASE_URL=database_url)
    assert _seen_by_view(direct) == {"addr": "127.0.0.1", "scheme": "http"}


def test_pool_settings_reach_the_engine_and_readyz_does_not_queue_behind_a_full_pool(
    database_url, is_postgres
) -> None:
    if not is_postgres:
        pytest.skip("pool settings apply to PostgreSQL")  # CI runs on PostgreSQL
    app = create_app("testing", DATABASE_URL=database_url, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0)
    engine = database.state(app).engine
    assert engine.pool.size() == 1
    busy = engine.connect()  # the whole pool is taken (a request stuck on a slow query)
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 200
        assert response.get_json()["checks"]["database"]["status"] == "ok"
    finally:
        busy.close()
