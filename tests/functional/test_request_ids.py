"""Request ids: one JSON log line per request, and the id follows the work into audit events
and background jobs (inline and on a real RQ worker)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid

import pytest
from flask_login import FlaskLoginClient
from sqlalchemy import select

from reviewapp import ROOT, create_app
from reviewapp.audit.models import AuditEvent
from reviewapp.extensions import db as database
from reviewapp.jobs import enqueue_after_commit, rq_queue, run_in_app_context
from reviewapp.logs import RequestIdFilter
from reviewapp.triage.retriage import retriage_open_applications
from tests.conftest import csrf_token
from tests.factories import (
    ApplicationFactory,
    OrganizationFactory,
    UserFactory,
    publish_general_medium,
)


@pytest.fixture()
def json_logged_app(database_url):  # noqa: ANN001, ANN201
    """An app logging JSON lines into a buffer: yields (app, buffer)."""
    app = create_app("testing", DATABASE_URL=database_url, LOG_FORMAT="json")
    app.test_client_class = FlaskLoginClient
    handler = app.extensions["reviewapp_log_handler"]
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield app, buffer
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
        database.state(app).engine.dispose()


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_request_id_is_in_the_audit_event_and_the_json_request_line(
    json_logged_app, committed_db
) -> None:
    app, buffer = json_logged_app
    staff = OrganizationFactory(name="Staff")
    reviewer = UserFactory(reviewer=True, organization=staff)
    application = ApplicationFactory(submitted=True)
    committed_db.commit()
    client = app.test_client(user=reviewer)
    token = csrf_token(client, "/policies")
    response = client.post(
        "/queue/claim-next", data={"csrf_token": token}, headers={"X-Request-ID": "req-claim-42"}
    )
    assert response.status_code == 302 and response.headers["X-Request-ID"] == "req-claim-42"

    committed_db.expire_all()
    event = committed_db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "application.claim",
            AuditEvent.subject_id == str(application.reference),
        )
    ).one()
    assert event.request_id == "req-claim-42"

    request_lines = [
        line
        for line in _lines(buffer.getvalue())
        if line.get("logger") == "reviewapp.request" and line.get("request_id") == "req-claim-42"
    ]
    assert len(request_lines) == 1, buffer.getvalue()[-2000:]
    line = request_lines[0]
    assert line["level"] == "INFO"
    assert line["method"] == "POST" and line["path"] == "/queue/claim-next"
    assert line["status"] == 302 and line["user_id"] == reviewer.id
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["timestamp"].endswith("+00:00")  # UTC
    # an anonymous request gets a generated id, and no user
    client.get("/logout")
    anonymous = app.test_client().get("/healthz")
    generated = anonymous.headers["X-Request-ID"]
    health = [line for line in _lines(buffer.getvalue()) if line.get("request_id") == generated]
    assert health and health[-1]["user_id"] is None and health[-1]["status"] == 200


def test_inline_job_audit_events_carry_the_request_id(app, committed_db) -> None:
    application = ApplicationFactory(submitted=True)
    committed_db.commit()
    assert application.risk_tier == "low"
    with app.test_request_context(headers={"X-Request-ID": "req-inline-5"}):
        app.preprocess_request()
        version = publish_general_medium(database.session)
        enqueue_after_commit(retriage_open_applications, version.id)
        database.commit()  # no REDIS_URL: the job runs inline here
    committed_db.expire_all()
    event = committed_db.scalars(
        select(AuditEvent).where(AuditEvent.action == "application.retriage")
    ).one()
    assert event.subject_id == application.reference and event.request_id == "req-inline-5"


def test_rq_job_logs_and_audits_with_the_enqueuing_request_id(
    database_url, redis_url, committed_db
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    application = ApplicationFactory(submitted=True)
    committed_db.commit()
    app = create_app(
        "testing", DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE_PREFIX=prefix
    )
    with app.test_request_context(headers={"X-Request-ID": "req-job-7"}):
        app.preprocess_request()
        version = publish_general_medium(database.session)
        enqueue_after_commit(retriage_open_applications, version.id)
        database.commit()  # enqueued on RQ, with the request id in the job's meta
        jobs = rq_queue(app=app).jobs
        assert [job.meta.get("request_id") for job in jobs] == ["req-job-7"]
    database.state(app).engine.dispose()

    env = dict(
        os.environ,
        REVIEWAPP_CONFIG="testing",
        REVIEWAPP_DATABASE_URL=database_url,
        REVIEWAPP_REDIS_URL=redis_url,
        REVIEWAPP_RQ_QUEUE_PREFIX=prefix,
        REVIEWAPP_LOG_FORMAT="json",
    )
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job_lines = [line for line in _lines(result.stderr) if line.get("request_id") == "req-job-7"]
    messages = [line["message"] for line in job_lines]
    assert any(
        m.startswith("job retriage_open_applications") and m.endswith("started") for m in messages
    ), result.stderr[-3000:]
    assert any("re-triage under ruleset" in m for m in messages)
    assert any(m.endswith("finished") for m in messages)

    committed_db.expire_all()
    event = committed_db.scalars(
        select(AuditEvent).where(AuditEvent.action == "application.retriage")
    ).one()
    assert event.subject_id == application.reference and event.request_id == "req-job-7"


@run_in_app_context
def failing_job(reason: str) -> None:
    """A job that fails (for the test below; RQ imports it by this module's path)."""
    raise RuntimeError(reason)


def test_a_failing_rq_job_logs_its_failure_with_the_enqueuing_request_id(
    database_url, redis_url, caplog
) -> None:
    from rq import SimpleWorker

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    app = create_app(
        "testing", DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE_PREFIX=prefix
    )
    with app.test_request_context(headers={"X-Request-ID": "req-fails-3"}):
        app.preprocess_request()
        enqueue_after_commit(failing_job, "the webhook host is gone")
        database.commit()
        queue = rq_queue(app=app)
        caplog.handler.addFilter(RequestIdFilter())  # as the app's log handlers do
        with caplog.at_level(logging.ERROR, logger="reviewapp.jobs"):
            SimpleWorker([queue], connection=queue.connection).work(
                burst=True, with_scheduler=False
            )
    failed = [r for r in caplog.records if r.name == "reviewapp.jobs" and "failed" in r.message]
    assert len(failed) == 1 and failed[0].message.startswith("job failing_job ")
    assert failed[0].request_id == "req-fails-3"  # type: ignore[attr-defined]
    assert "the webhook host is gone" in (failed[0].exc_text or "")
    assert queue.failed_job_registry.count == 1  # RQ still records the failure
    database.state(app).engine.dispose()


def test_flask_sweep_gives_its_run_one_request_id(app, committed_db) -> None:
    """Lease expiry by the sweep is audited with a ``sweep-…`` id, the same for the whole run."""
    import datetime as dt

    from reviewapp.db import utcnow

    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory())
    expired = [ApplicationFactory(submitted=True) for _ in range(2)]
    for application in expired:
        application.status = "in_review"
        application.claimed_by_id = reviewer.id
        application.lease_expires_at = utcnow() - dt.timedelta(minutes=5)
    committed_db.commit()
    result = app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert "2 expired leases returned" in result.output
    events = committed_db.scalars(
        select(AuditEvent).where(AuditEvent.action == "application.lease_expired")
    ).all()
    ids = {e.request_id for e in events}
    assert len(events) == 2 and len(ids) == 1
    assert next(iter(ids)).startswith("sweep-")
