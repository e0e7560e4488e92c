"""A real `rq worker` SIGKILLed in the middle of a job: `flask sweep` leaves nothing transient.

The job is held at a known point by a table lock the test takes (so the kill lands mid-job every
time, not by timing luck); the worker's whole process group (worker and work horse) is then
killed, as a crash or the OOM killer would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from flask_login import FlaskLoginClient
from sqlalchemy import func, select, text

from reviewapp import ROOT, create_app
from reviewapp.applications.models import Application
from reviewapp.audit.models import OutboxEvent
from reviewapp.extensions import db as database
from reviewapp.jobs import enqueue_after_commit
from reviewapp.triage.backtest import start_backtest
from reviewapp.triage.models import Backtest, RulesetStatus, RulesetVersion
from reviewapp.triage.retriage import RETRIAGE_LOCK_CLASS, retriage_open_applications
from reviewapp.webhooks.models import WebhookDelivery
from tests.factories import (
    ApplicationFactory,
    OrganizationFactory,
    UserFactory,
    publish_general_medium,
)


@pytest.fixture()
def pg_only(is_postgres) -> None:  # noqa: ANN001
    if not is_postgres:
        from tests.conftest import service_missing

        service_missing("PostgreSQL (worker crash tests lock tables)")


@pytest.fixture()
def setup(database_url, redis_url, committed_db, pg_only, tmp_path):  # noqa: ANN001, ANN201
    prefix = f"crash-{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        REVIEWAPP_CONFIG="testing",
        REVIEWAPP_DATABASE_URL=database_url,
        REVIEWAPP_REDIS_URL=redis_url,
        REVIEWAPP_RQ_QUEUE_PREFIX=prefix,
        REVIEWAPP_MAIL_BACKEND="file",
        REVIEWAPP_MAIL_FILE_DIR=str(tmp_path / "mail"),
        REVIEWAPP_BACKTEST_STALL_SECONDS="1",
    )
    app = create_app(
        "testing", DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE_PREFIX=prefix
    )
    app.test_client_class = FlaskLoginClient
    try:
        yield app, env, tmp_path
    finally:
        database.state(app).engine.dispose()


def _flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc): RQ's work horse, which RQ puts in a process
    group of its own, so killing the worker's group alone would leave it running."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _kill_worker(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its work horse at once, as a crash or the OOM killer would."""
    horses = _children(proc.pid)
    assert horses, "the worker has no work horse: the job is not running"
    for pid in [*horses, proc.pid]:
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for pid in horses:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _wait_for(predicate, what: str, log: Path, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")


def _assert_nothing_transient(session) -> None:  # noqa: ANN001
    session.expire_all()
    assert (
        session.scalar(
            select(func.count())
            .select_from(Backtest)
            .where(Backtest.status.in_(["queued", "running"]))
        )
        == 0
    )
    assert (
        session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.status == "sending")
        )
        == 0
    )
    assert (
        session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
        )
        == 0
    )


def test_backtest_whose_worker_was_killed_is_marked_failed_and_shown(setup, committed_db) -> None:
    app, env, tmp_path = setup
    for _ in range(3):
        ApplicationFactory(submitted=True)
    admin = UserFactory(admin=True, organization=OrganizationFactory(name="Policy team"))
    committed_db.commit()
    with app.app_context():
        active = database.session.scalars(
            select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
        ).one()
        backtest_id = start_backtest(database.session, admin, active).id
        database.commit()  # one chunk job on the "low" queue

    engine = database.state(app).engine
    holder = engine.connect()
    holder.execute(text("LOCK TABLE backtest_item IN EXCLUSIVE MODE"))  # the chunk's INSERT waits
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log)
    try:

        def running() -> bool:
            committed_db.expire_all()
            return committed_db.get(Backtest, backtest_id).status == "running"

        _wait_for(running, "the chunk job to start", log)
        time.sleep(0.5)  # let it reach the blocked INSERT
    finally:
        _kill_worker(worker)
        holder.rollback()
        holder.close()
    committed_db.expire_all()
    assert committed_db.get(Backtest, backtest_id).status == "running"  # left behind

    time.sleep(1.2)  # BACKTEST_STALL_SECONDS=1 in this test
    swept = _flask(env, "sweep")
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert "backtests: 1 stalled marked failed" in swept.stdout
    assert _flask(env, "worker", "--burst").returncode == 0  # deliver what the sweep dispatched

    committed_db.expire_all()
    backtest = committed_db.get(Backtest, backtest_id)
    assert backtest.status == "failed" and backtest.finished_at is not None
    assert "worker running it stopped" in backtest.error
    assert "0 of 1 chunk" in backtest.error
    page = app.test_client(user=admin).get(f"/admin/rulesets/backtests/{backtest_id}")
    text_ = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "failed" in text_ and "Start the backtest again." in text_
    _assert_nothing_transient(committed_db)


def test_retriage_whose_worker_was_killed_is_resumed_by_the_sweep(setup, committed_db) -> None:
    app, env, tmp_path = setup
    ids = [ApplicationFactory(submitted=True).id for _ in range(3)]
    committed_db.commit()
    with app.app_context():
        version = publish_general_medium(database.session)
        enqueue_after_commit(retriage_open_applications, version.id)
        database.commit()  # the re-triage job is on the default queue

    engine = database.state(app).engine
    holder = engine.connect()
    holder.execute(text("LOCK TABLE triage_result IN EXCLUSIVE MODE"))  # its first INSERT waits
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log)
    try:

        def holds_the_retriage_lock() -> bool:
            with engine.connect() as conn:
                return bool(
                    conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND classid = :cls AND objid = :obj AND granted"
                        ),
                        {"cls": RETRIAGE_LOCK_CLASS, "obj": version.id},
                    )
                )

        _wait_for(holds_the_retriage_lock, "the re-triage job to start", log)
        time.sleep(0.5)
    finally:
        _kill_worker(worker)
        holder.rollback()
        holder.close()

    def tiers() -> list[str]:
        committed_db.expire_all()
        return [
            committed_db.scalars(
                select(Application.risk_tier).where(Application.id == app_id)
            ).one()
            for app_id in ids
        ]

    assert tiers() == ["low"] * 3  # interrupted before anything was committed

    swept = _flask(env, "sweep")
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert f"re-triage under ruleset v{version.number} resumed" in swept.stdout
    burst = _flask(env, "worker", "--burst")
    assert burst.returncode == 0, burst.stderr[-2000:]
    assert tiers() == ["medium"] * 3
    again = _flask(env, "sweep")
    assert "re-triage: nothing left over" in again.stdout
    _assert_nothing_transient(committed_db)
