"""PostgreSQL restarted while the app serves: requests fail cleanly during the outage (503, an
error page or JSON error, no stack trace) and succeed afterwards without restarting the app.

The shared PostgreSQL is never touched: the test runs a throwaway cluster of its own (initdb
into a temporary directory, as the postgres user) and stops and starts that one.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask_login import FlaskLoginClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from reviewapp import create_app
from reviewapp.auth.models import Organization, Role, User
from reviewapp.extensions import db as database
from reviewapp.models import Base
from tests.conftest import service_missing
from tests.factories import PASSWORD


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<port>, run as the postgres user."""

    def __init__(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            service_missing("initdb/pg_ctl (PostgreSQL server binaries)")
        self.pg_ctl = str(pg_ctl)
        self.root = Path(tempfile.mkdtemp(prefix="reviewapp-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        self._run(
            str(initdb), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
            "--no-instructions", "-E", "UTF8",
        )  # fmt: skip

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as_postgres, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr[-2000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [*self._as_postgres, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    try:
        pg = Cluster()
        pg.start()
    except (OSError, RuntimeError) as exc:
        service_missing(f"a throwaway PostgreSQL cluster ({exc})")
    try:
        yield pg
    finally:
        pg.remove()


def _assert_clean_503(response, *, json: bool) -> None:  # noqa: ANN001
    body = response.get_data(as_text=True)
    assert response.status_code == 503, body[:500]
    assert response.headers["Retry-After"] == "5"
    assert "Traceback" not in body and "psycopg" not in body and "OperationalError" not in body
    if json:
        assert response.get_json()["error"]["code"] == "database_unavailable"
    else:
        assert "briefly unavailable" in body and "<html" in body.lower()


def test_requests_fail_cleanly_during_a_restart_and_recover_without_an_app_restart(
    cluster: Cluster,
) -> None:
    schema = create_engine(cluster.url)
    Base.metadata.create_all(schema)
    with Session(schema, expire_on_commit=False) as session:
        # built by hand: binding the shared factories to this throwaway database would leave
        # them pointing at it for the tests that follow
        reviewer = User(
            email="outage-reviewer@example.com",
            name="Outage Reviewer",
            password_hash=PasswordHasher().hash(PASSWORD),
            role=Role.reviewer,
            organization=Organization(name="Staff"),
        )
        session.add(reviewer)
        session.commit()
    schema.dispose()
    # TESTING off: the production error handling (no exception reaches the test client)
    app = create_app(
        "testing", DATABASE_URL=cluster.url, TESTING=False, DB_CONNECT_TIMEOUT_SECONDS=2
    )
    app.test_client_class = FlaskLoginClient
    client = app.test_client()
    signed_in = app.test_client(user=reviewer)
    api_auth = {"Authorization": "Bearer ra_abcdefgh_not-a-real-secret"}
    try:
        assert client.get("/policies").status_code == 200  # the pool now holds a connection
        assert signed_in.get("/queue").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/v1/applications/APP-000001", headers=api_auth).status_code == 401

        cluster.stop()
        started = time.monotonic()
        _assert_clean_503(client.get("/policies"), json=False)
        # loading the signed-in user fails too: the error page is still rendered
        _assert_clean_503(signed_in.get("/queue"), json=False)
        _assert_clean_503(
            client.get("/api/v1/applications/APP-000001", headers=api_auth), json=True
        )
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["failing"] == ["database"]
        assert client.get("/healthz").status_code == 200  # the process itself is fine
        assert time.monotonic() - started < 10  # fails fast, no hanging requests

        cluster.start()
        # the same app, no restart: pre-ping replaces the dead pooled connections
        assert client.get("/policies").status_code == 200
        assert signed_in.get("/queue").status_code == 200  # still signed in
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/v1/applications/APP-000001", headers=api_auth).status_code == 401
    finally:
        database.state(app).engine.dispose()
