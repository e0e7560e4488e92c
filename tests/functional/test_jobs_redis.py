"""Background jobs on real Redis + RQ with a real worker process; the outbox loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import select

from reviewapp import ROOT, create_app
from reviewapp.audit.models import OutboxEvent
from reviewapp.audit.services import add_outbox_event
from reviewapp.extensions import db as database


def _worker_env(database_url: str, redis_url: str, prefix: str, mail_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REVIEWAPP_CONFIG="testing",
        REVIEWAPP_DATABASE_URL=database_url,
        REVIEWAPP_REDIS_URL=redis_url,
        REVIEWAPP_RQ_QUEUE_PREFIX=prefix,
        REVIEWAPP_MAIL_BACKEND="file",
        REVIEWAPP_MAIL_FILE_DIR=str(mail_dir),
    )
    return env


def _run_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_outbox_row_is_delivered_once_by_an_rq_worker(
    database_url, redis_url, committed_db, tmp_path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    mail_dir = tmp_path / "mail"
    app = create_app(
        "testing",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        RQ_QUEUE_PREFIX=prefix,
        MAIL_BACKEND="file",
        MAIL_FILE_DIR=str(mail_dir),
    )
    with app.app_context():
        event = add_outbox_event(
            database.session,
            "decision",
            {"to": ["dev@example.com"], "subject": "Decided", "body": "Approved ✓"},
        )
        event_id = event.id
        database.commit()  # enqueues to RQ after commit
        from reviewapp.jobs import rq_queue

        assert rq_queue(app=app).count == 1
    database.state(app).engine.dispose()
    assert not mail_dir.exists()  # nothing ran inline
    result = _run_worker(_worker_env(database_url, redis_url, prefix, mail_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    files = list(mail_dir.glob("*.eml"))
    assert len(files) == 1
    text = files[0].read_text()
    assert f"X-Reviewapp-Event-Id: evt-{event_id}" in text and "Subject: Decided" in text
    committed_db.expire_all()
    row = committed_db.get(OutboxEvent, event_id)
    assert row is not None and row.delivered_at is not None and row.attempts == 1
    # running the dispatcher again finds nothing pending: delivered exactly once
    assert _run_worker(_worker_env(database_url, redis_url, prefix, mail_dir)).returncode == 0
    assert len(list(mail_dir.glob("*.eml"))) == 1


def test_redis_down_at_commit_loses_nothing(
    database_url, redis_url, committed_db, tmp_path
) -> None:
    mail_dir = tmp_path / "mail"
    dead_redis = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    app = create_app(
        "testing",
        DATABASE_URL=database_url,
        REDIS_URL=dead_redis,
        MAIL_BACKEND="file",
        MAIL_FILE_DIR=str(mail_dir),
    )
    with app.app_context():
        add_outbox_event(
            database.session,
            "decision",
            {"to": ["dev@example.com"], "subject": "Later", "body": "x"},
        )
        database.commit()  # enqueue fails; the change is committed and the row stays pending
    database.state(app).engine.dispose()
    pending = committed_db.scalars(
        select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
    ).all()
    assert len(pending) == 1
    # Redis is back: the dispatcher enqueues pending rows and a worker delivers them
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    env = _worker_env(database_url, redis_url, prefix, mail_dir)
    dispatched = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "dispatch-outbox"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert dispatched.returncode == 0 and "1 pending" in dispatched.stdout, dispatched.stderr[
        -2000:
    ]
    assert _run_worker(env).returncode == 0
    assert len(list(mail_dir.glob("*.eml"))) == 1
    committed_db.expire_all()
    assert (
        committed_db.scalars(select(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))).all()
        == []
    )
