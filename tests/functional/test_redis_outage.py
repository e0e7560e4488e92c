"""Redis really stopped: a developer submits in the browser while the only Redis is down; the
submission succeeds; once Redis is back, ``flask sweep`` and a real RQ worker deliver the
submission email and the webhook exactly once each. The test runs its own redis-server on a
free port (never the shared one) so it can stop and restart it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from reviewapp import ROOT, create_app
from reviewapp.applications.models import Status
from reviewapp.audit.models import OutboxEvent
from reviewapp.extensions import db as database
from reviewapp.webhooks.models import WebhookDelivery, WebhookEndpoint
from reviewapp.webhooks.services import verify_signature
from tests.conftest import post_form, service_missing
from tests.factories import PASSWORD, ApplicationFactory, OrganizationFactory, UserFactory
from tests.functional.developer.test_webhooks import Receiver
from tests.functional.test_webhook_reliability import WORKER, _worker_env

SECRET = "whsec_outage-test-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test only, started and stopped on one port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server (binary)")
        self.binary = str(binary)
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture()
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()


def test_submit_while_redis_is_stopped_then_delivered_once(
    database_url, committed_db, is_postgres, private_redis, tmp_path: Path
) -> None:
    if not is_postgres:
        service_missing("PostgreSQL")
    org = OrganizationFactory()
    developer = UserFactory(organization=org)
    application = ApplicationFactory(submitter=developer)
    with Receiver() as receiver:
        committed_db.add(
            WebhookEndpoint(
                organization_id=org.id,
                url=receiver.url,
                secret=SECRET,
                event_types=["submitted"],
                active=True,
                created_by_id=developer.id,
            )
        )
        committed_db.commit()
        prefix = f"outage-{uuid.uuid4().hex[:8]}"
        app = create_app(
            "testing",
            DATABASE_URL=database_url,
            REDIS_URL=private_redis.url,
            RQ_QUEUE_PREFIX=prefix,
            SESSION_PROTECTION="basic",
        )
        # Redis is stopped (never started): log in and submit in the browser
        client = app.test_client()
        logged_in = post_form(
            client, "/login", {"email": developer.email, "password": PASSWORD}, token_from="/login"
        )
        assert logged_in.status_code == 302
        ref = application.reference
        submitted = post_form(
            client, f"/applications/{ref}/submit", token_from=f"/applications/{ref}"
        )
        assert submitted.status_code == 302 and submitted.location.endswith(ref)
        committed_db.expire_all()
        assert committed_db.get(type(application), application.id).status == Status.queued
        outbox = committed_db.scalars(
            select(OutboxEvent).where(OutboxEvent.kind == "submitted")
        ).one()
        assert outbox.delivered_at is None  # waiting, not lost
        assert receiver.received == []

        # Redis comes back: the sweeper enqueues what is pending, a real worker delivers it
        private_redis.start()
        env = _worker_env(database_url, private_redis.url, prefix, tmp_path)
        for command in (["sweep"], ["sweep"]):  # twice: a duplicate enqueue is harmless
            swept = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "flask", "--app", "wsgi", *command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert swept.returncode == 0, swept.stderr[-2000:]
        worked = subprocess.run(  # noqa: S603
            WORKER, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert worked.returncode == 0, worked.stderr[-2000:]
        database.state(app).engine.dispose()

        assert len(receiver.received) == 1  # exactly once
        hit = receiver.received[0]
        assert verify_signature(SECRET, hit.headers["x-reviewapp-signature"], hit.body)
        assert json.loads(hit.body)["data"]["application"] == ref
        mails = [p.read_text() for p in (tmp_path / "mail").glob("*.eml")]
        assert len([m for m in mails if f"[{ref}] Received" in m]) == 1
        committed_db.expire_all()
        assert committed_db.get(OutboxEvent, outbox.id).delivered_at is not None
        delivery = committed_db.scalars(select(WebhookDelivery)).one()
        assert (delivery.status, delivery.attempts) == ("delivered", 1)
