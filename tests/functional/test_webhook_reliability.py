"""Webhook deliveries survive crashes: a worker SIGKILLed inside the HTTP call, Redis down at
commit, late results of superseded attempts, concurrent claims. Real PostgreSQL, Redis, RQ
worker processes and a local HTTP receiver; nothing stays ``sending`` forever."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from reviewapp import ROOT, create_app
from reviewapp.audit.services import add_outbox_event
from reviewapp.db import utcnow
from reviewapp.extensions import db as database
from reviewapp.jobs import rq_queue
from reviewapp.webhooks.jobs import dispatch_due_deliveries
from reviewapp.webhooks.models import WebhookDelivery, WebhookEndpoint
from reviewapp.webhooks.services import (
    claim_delivery,
    record_attempt,
    recover_stuck_deliveries,
    verify_signature,
)
from tests.conftest import service_missing
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory
from tests.functional.developer.test_webhooks import Receiver, webhooks_app

SECRET = "whsec_reliability-test-secret"


@pytest.fixture(scope="module")
def app(app: Flask, database_url: str) -> Iterator[Flask]:
    yield from webhooks_app(app, database_url)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture()
def postgres(is_postgres: bool) -> None:
    if not is_postgres:
        service_missing("PostgreSQL")


def _seed(session: Session, url: str) -> tuple[Any, WebhookEndpoint, str]:
    """A developer organization with one application and one endpoint (committed)."""
    org = OrganizationFactory()
    developer = UserFactory(organization=org)
    application = ApplicationFactory(submitter=developer)
    endpoint = WebhookEndpoint(
        organization_id=org.id,
        url=url,
        secret=SECRET,
        event_types=["*"],
        active=True,
        created_by_id=developer.id,
    )
    session.add(endpoint)
    session.commit()
    return developer, endpoint, application.reference


def _payload(reference: str) -> dict[str, Any]:
    return {
        "application": reference,
        "outcome": "approve",
        "to": ["dev@example.com"],
        "subject": "Approved",
        "body": "Approved.",
    }


def _worker_env(database_url: str, redis_url: str, prefix: str, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REVIEWAPP_CONFIG="testing",
        REVIEWAPP_DATABASE_URL=database_url,
        REVIEWAPP_REDIS_URL=redis_url,
        REVIEWAPP_RQ_QUEUE_PREFIX=prefix,
        REVIEWAPP_MAIL_BACKEND="file",
        REVIEWAPP_MAIL_FILE_DIR=str(tmp / "mail"),
        # long enough that the attempt is surely still inside the HTTP call when killed
        REVIEWAPP_WEBHOOK_TIMEOUT_SECONDS="60",
    )
    return env


WORKER = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"]


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (RQ runs each job in a forked work horse)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _is_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def _delivery(session: Session) -> WebhookDelivery:
    session.expire_all()
    return session.scalars(select(WebhookDelivery)).one()


def test_worker_killed_inside_the_http_call_is_recovered_and_delivered(
    postgres, database_url, redis_url, committed_db, receiver, tmp_path
) -> None:
    receiver.hold_first = True  # the first request hangs until released
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    web = create_app(
        "testing", DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE_PREFIX=prefix
    )
    _, endpoint, reference = _seed(committed_db, receiver.url)
    try:
        with web.app_context():
            add_outbox_event(database.session, "decision", _payload(reference))
            database.commit()  # enqueues the email job and the webhook job
            assert rq_queue(app=web).count == 2
        assert _delivery(committed_db).status == "pending"

        env = _worker_env(database_url, redis_url, prefix, tmp_path)
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and flask command
            WORKER, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert receiver.arrived.wait(60), "the worker never reached the receiver"
            delivery = _delivery(committed_db)
            assert (delivery.status, delivery.attempts) == ("sending", 1)
            assert delivery.sending_started_at is not None
            # SIGKILL the work horse (inside the HTTP call) and the worker itself
            horses = _children(worker.pid)
            assert horses, "no work horse found"
            for pid in horses:
                os.kill(pid, signal.SIGKILL)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(30)
            deadline = time.monotonic() + 10
            while not all(_is_gone(pid) for pid in horses) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert all(_is_gone(pid) for pid in horses)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
            worker.stdout.close()  # type: ignore[union-attr]
            worker.stderr.close()  # type: ignore[union-attr]
        receiver.release.set()
        # nobody will finish that attempt: without the sweeper it would stay "sending"
        time.sleep(0.2)
        assert _delivery(committed_db).status == "sending"

        with web.app_context():
            # still inside the lease (a live worker might yet answer): left alone
            assert recover_stuck_deliveries(database.session) == (0, 0)
            database.commit()
            # past the lease (here: any age): back to pending, due now
            assert recover_stuck_deliveries(database.session, older_than_seconds=0) == (1, 0)
            database.commit()
        delivery = _delivery(committed_db)
        assert delivery.status == "pending" and delivery.attempts == 1
        assert "interrupted" in (delivery.last_error or "")

        with web.app_context():
            assert dispatch_due_deliveries() == 1  # enqueued to RQ
        result = subprocess.run(  # noqa: S603
            WORKER, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr[-2000:]
    finally:
        database.state(web).engine.dispose()

    delivery = _delivery(committed_db)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert delivery.sending_started_at is None and delivery.last_error is None
    # at-least-once: the receiver saw the event twice, with the same id to deduplicate on
    assert len(receiver.received) == 2
    assert {r.headers["x-reviewapp-event-id"] for r in receiver.received} == {delivery.event_id}
    assert receiver.received[0].body == receiver.received[1].body
    for request in receiver.received:
        assert verify_signature(SECRET, request.headers["x-reviewapp-signature"], request.body)


def test_redis_down_at_commit_loses_no_webhook(
    postgres, database_url, redis_url, committed_db, receiver, tmp_path
) -> None:
    dead = create_app("testing", DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:1/0")
    _, _, reference = _seed(committed_db, receiver.url)
    with dead.app_context():
        add_outbox_event(database.session, "decision", _payload(reference))
        database.commit()  # the enqueue fails and is logged; the change and the rows are saved
    database.state(dead).engine.dispose()
    assert _delivery(committed_db).status == "pending"
    assert receiver.received == []

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    live = create_app(
        "testing", DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE_PREFIX=prefix
    )
    with live.app_context():
        assert dispatch_due_deliveries() == 1
        assert dispatch_due_deliveries() == 1  # still pending: a duplicate job is harmless
    database.state(live).engine.dispose()
    result = subprocess.run(  # noqa: S603
        WORKER,
        cwd=ROOT,
        env=_worker_env(database_url, redis_url, prefix, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    delivery = _delivery(committed_db)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert len(receiver.received) == 1  # the duplicate job found nothing to do


def test_concurrent_claims_send_one_attempt(postgres, app, committed_db) -> None:
    _, endpoint, reference = _seed(committed_db, "https://example.com/hooks")
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id="evt-42",
        event_type="decision",
        payload={"id": "evt-42"},
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
        retry_until=utcnow() + dt.timedelta(hours=24),
    )
    committed_db.add(delivery)
    committed_db.commit()
    engine = database.state(app).engine
    barrier = threading.Barrier(4)
    claims: list[Any] = []

    def claim() -> None:
        with Session(engine) as session:
            barrier.wait(10)
            claims.append(claim_delivery(session, delivery.id, now=utcnow()))
            session.commit()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(claims) == 4 and len([c for c in claims if c is not None]) == 1
    assert _delivery(committed_db).attempts == 1


def test_late_result_of_a_superseded_attempt_is_ignored(app, db) -> None:
    developer = UserFactory()
    endpoint = WebhookEndpoint(
        organization_id=developer.organization_id,
        url="https://example.com/hooks",
        secret=SECRET,
        event_types=["*"],
        created_by_id=developer.id,
    )
    db.add(endpoint)
    db.flush()
    start = utcnow()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id="evt-7",
        event_type="decision",
        payload={"id": "evt-7"},
        next_attempt_at=start,
        retry_until=start + dt.timedelta(hours=24),
    )
    db.add(delivery)
    db.flush()
    with app.app_context():
        first = claim_delivery(db, delivery.id, now=start)
        assert first is not None and first.attempt == 1
        assert claim_delivery(db, delivery.id, now=start) is None  # already sending
        # the first worker hangs; the sweeper gives the delivery to a second one
        later = start + dt.timedelta(minutes=5)
        assert recover_stuck_deliveries(db, now=later) == (1, 0)
        second = claim_delivery(db, delivery.id, now=later)
        assert second is not None and second.attempt == 2
        # the first worker wakes up with a 500: too late, nothing is written
        assert record_attempt(db, first, status_code=500, error="HTTP 500", now=later) is None
        db.expire_all()
        assert (delivery.status, delivery.attempts) == ("sending", 2)
        assert record_attempt(db, second, status_code=204, error=None, now=later) == "delivered"
        db.expire_all()
        assert (delivery.status, delivery.last_status_code) == ("delivered", 204)


def test_stuck_delivery_after_the_retry_window_is_failed_and_shown_to_the_developer(
    app: Flask, db, login
) -> None:
    developer = UserFactory()
    endpoint = WebhookEndpoint(
        organization_id=developer.organization_id,
        url="https://example.com/hooks",
        secret=SECRET,
        event_types=["*"],
        created_by_id=developer.id,
    )
    db.add(endpoint)
    db.flush()
    start = utcnow()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id="evt-8",
        event_type="decision",
        payload={"id": "evt-8", "data": {"application": "APP-000001"}},
        next_attempt_at=start,
        retry_until=start + dt.timedelta(hours=24),
    )
    db.add(delivery)
    db.flush()
    with app.app_context():
        assert claim_delivery(db, delivery.id, now=start + dt.timedelta(hours=23, minutes=59))
        # the worker died in the last minute of the window; the sweeper runs after it closed
        assert recover_stuck_deliveries(db, now=start + dt.timedelta(hours=25)) == (0, 1)
    db.expire_all()
    assert delivery.status == "failed" and delivery.sending_started_at is None
    assert "the retry window is over" in (delivery.last_error or "")
    page = login(developer).get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    assert ">failed<" in page and "interrupted" in page


def test_sweep_command_requeues_stuck_rows_and_sends_due_ones(app, db, receiver) -> None:
    developer = UserFactory()
    endpoint = WebhookEndpoint(
        organization_id=developer.organization_id,
        url=receiver.url,
        secret=SECRET,
        event_types=["*"],
        created_by_id=developer.id,
    )
    db.add(endpoint)
    db.flush()
    now = utcnow()
    for number, status in ((1, "pending"), (2, "sending"), (3, "delivered")):
        db.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event_id=f"evt-{number}",
                event_type="decision",
                payload={"id": f"evt-{number}"},
                status=status,
                attempts=0 if status == "pending" else 1,
                next_attempt_at=now if status == "pending" else None,
                sending_started_at=now - dt.timedelta(minutes=10) if status == "sending" else None,
                delivered_at=now if status == "delivered" else None,
                retry_until=now + dt.timedelta(hours=24),
            )
        )
    db.flush()
    result = app.test_cli_runner().invoke(args=["webhooks", "sweep"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "1 interrupted webhook deliveries requeued, 0 failed (retry window over); "
        "2 due deliveries handled"
    )
    assert sorted(r.headers["x-reviewapp-event-id"] for r in receiver.received) == [
        "evt-1",
        "evt-2",
    ]
    db.expire_all()
    statuses = db.scalars(select(WebhookDelivery.status).order_by(WebhookDelivery.id)).all()
    assert statuses == ["delivered", "delivered", "delivered"]
    result = app.test_cli_runner().invoke(args=["webhooks", "dispatch"])
    assert result.output.strip() == "0 due webhook deliveries handled"
