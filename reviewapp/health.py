"""Health checks for load balancers and orchestrators.

- ``GET /healthz``: the process is up and serving. Touches neither the database nor Redis, so a
  database outage does not make every web process look dead (liveness).
- ``GET /readyz``: the process can do useful work: the database answers ``SELECT 1`` and, when
  ``REDIS_URL`` is configured, Redis answers ``PING`` (readiness). Each check has a short timeout
  (``HEALTH_CHECK_TIMEOUT_SECONDS``); a failing check gives 503 naming it, never a stack trace.

Both are exempt from log-in, CSRF and rate limits, and are served over plain HTTP even where
``FORCE_HTTPS`` redirects everything else (load balancers probe the backends without TLS).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from flask_talisman import Talisman
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from reviewapp.extensions import csrf

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

# Talisman's per-view options are read from the view function by each app's own Talisman
# (reviewapp/__init__.py); this unbound instance only lends its public view decorator
talisman = Talisman()

#: paths the request log and access matrix know as probes
HEALTH_PATHS = ("/healthz", "/readyz")


def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
@talisman(force_https=False)
def healthz() -> Any:
    """Liveness: ``{"status": "ok"}`` with 200 whenever the process can answer."""
    return _no_store(jsonify(status="ok"))


@bp.get("/readyz")
@talisman(force_https=False)
def readyz() -> Any:
    """Readiness: 200 ``{"status": "ok", "checks": {"database": {"status": "ok", "ms": 1.2},
    "redis": {...}}}`` when every check passes; 503 ``{"status": "unavailable", "failing":
    ["database"], "checks": {"database": {"status": "error", "error": "OperationalError"}}}``
    otherwise. ``redis`` is present only when REDIS_URL is set. ``ms`` is the check's duration."""
    checks = {"database": _timed(check_database)}
    if current_app.config.get("REDIS_URL"):
        checks["redis"] = _timed(check_redis)
    failing = [name for name, result in checks.items() if result["status"] != "ok"]
    body: dict[str, Any] = {"status": "unavailable" if failing else "ok", "checks": checks}
    if failing:
        body["failing"] = failing
    return _no_store(jsonify(body)), 503 if failing else 200


def _timed(check: Any) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - a probe reports any failure, it never raises
        log.warning("readiness check %s failed: %s", check.__name__, exc)
        # the exception class only: messages can carry host names and credentials
        return {"status": "error", "error": type(exc).__name__}
    return {"status": "ok", "ms": round((time.perf_counter() - start) * 1000, 1)}


def _probe_engine() -> Engine:
    """An engine of its own for the probe (one per app): no pool, so a probe never waits for
    a busy pool and always opens a real connection, with the health timeout as connect timeout.
    SQLite (embedded default) uses the app's engine."""
    from reviewapp.extensions import db

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    engine = app.extensions.get("reviewapp_health_engine")
    if engine is None:
        url = app.config["DATABASE_URL"]
        if not url.startswith("postgresql"):
            return db.engine
        # libpq counts whole seconds, at least 2
        timeout = max(2, math.ceil(float(app.config["HEALTH_CHECK_TIMEOUT_SECONDS"])))
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": timeout})
        app.extensions["reviewapp_health_engine"] = engine
    return engine  # type: ignore[no-any-return]


def check_database() -> None:
    """Run ``SELECT 1`` on a new connection, with a statement timeout (PostgreSQL).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached or does not answer.
    """
    timeout_ms = int(float(current_app.config["HEALTH_CHECK_TIMEOUT_SECONDS"]) * 1000)
    with _probe_engine().connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SET LOCAL statement_timeout = {timeout_ms}"))
        conn.execute(text("SELECT 1")).scalar_one()
        conn.rollback()  # SET LOCAL ends with the transaction: the pool gets a clean connection


def check_redis() -> None:
    """PING Redis with the health timeout (a separate client: the shared one waits longer).

    Raises:
        redis.RedisError: Redis cannot be reached or does not answer.
    """
    from redis import Redis

    timeout = float(current_app.config["HEALTH_CHECK_TIMEOUT_SECONDS"])
    client = Redis.from_url(
        current_app.config["REDIS_URL"], socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        if not client.ping():
            raise RuntimeError("Redis did not answer PONG")
    finally:
        client.close()


def init_health(app: Flask) -> None:
    """Register the blueprint; CSRF never applies to the probes."""
    app.register_blueprint(bp)
    csrf.exempt(bp)
