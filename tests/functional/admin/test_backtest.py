"""Backtests: a draft ruleset over past revisions, inline and with two real RQ workers."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reviewapp import ROOT, create_app
from reviewapp.applications.models import Application, Revision, Status
from reviewapp.audit.models import AuditEvent
from reviewapp.db import utcnow
from reviewapp.errors import ValidationFailed
from reviewapp.extensions import db as database
from reviewapp.review.models import Decision
from reviewapp.triage.backtest import (
    backtest_progress,
    candidate_revision_ids,
    run_backtest_chunk,
    start_backtest,
)
from reviewapp.triage.models import (
    Backtest,
    BacktestItem,
    RulesetVersion,
    TriageResult,
)
from reviewapp.triage.services import (
    active_ruleset,
    create_ruleset_version,
    ruleset_document,
    tiers_in_order,
    triage_revision,
)
from tests.factories import HIGH_RISK, ApplicationFactory, UserFactory, content

GENERAL_TO_MEDIUM = {
    "key": "backtest_general_medium",
    "name": "General-domain uses are at least medium",
    "description": "Test rule for backtests.",
    "condition": "'general' in domains",
    "actions": [{"type": "raise_tier", "tier": "medium"}],
    "enabled": True,
    "examples": {},
}


def _draft(session: Session) -> RulesetVersion:
    document = copy.deepcopy(ruleset_document(active_ruleset(session)))
    document["rules"].append(dict(GENERAL_TO_MEDIUM))
    return create_ruleset_version(session, document, actor=None)


def _expected_new_tier(application: Application, ranks: dict[str, int]) -> str:
    """What the draft decides: the active tier, raised to medium for general-domain content."""
    tier = application.risk_tier
    assert tier is not None
    content = application.current_revision.content  # type: ignore[union-attr]
    if "general" in content["domains"] and ranks[tier] < ranks["medium"]:
        return "medium"
    return tier


def test_inline_backtest_reports_tier_changes_decisions_and_reference_agreement(app, db) -> None:
    low = [ApplicationFactory(submitted=True) for _ in range(4)]
    high = [ApplicationFactory(submitted=True, high_tier=True) for _ in range(2)]
    ApplicationFactory()  # a draft is never backtested
    withdrawn = ApplicationFactory(submitted=True)
    withdrawn.status = Status.withdrawn
    # answer-key labels for precision/recall
    low[0].reference_tier = "low"
    low[1].reference_tier = "medium"
    high[0].reference_tier = "high"
    # one decided application (its last decision judged the current revision)
    reviewer = UserFactory(reviewer=True)
    decision = Decision(
        application_id=high[1].id,
        revision_id=high[1].current_revision_id,
        outcome="reject",
        reviewer_id=reviewer.id,
        message="Rejected.",
    )
    db.add(decision)
    db.flush()
    high[1].last_decision_id = decision.id
    high[1].status = Status.rejected
    # one revision without a stored baseline result: the baseline is evaluated instead
    db.execute(
        TriageResult.__table__.delete().where(
            TriageResult.revision_id == low[3].current_revision_id
        )
    )
    db.flush()

    with app.app_context():
        session = database.session
        draft = _draft(session)
        tiers = [t.name for t in tiers_in_order(session)]
        backtest = start_backtest(session, None, draft, chunk_size=2)
        backtest_id = backtest.id
        assert backtest.total == 6 and backtest.chunks_total == 3
        assert backtest_progress(backtest)["percent"] == 0.0
        database.commit()  # no Redis: the three chunk jobs run inline after the commit

    backtest = db.get(Backtest, backtest_id, populate_existing=True)
    assert backtest is not None
    assert backtest.status == "done", backtest.error
    assert backtest.processed == backtest.total == 6 and backtest.chunks_done == 3
    assert backtest.started_at is not None and backtest.finished_at is not None
    assert backtest_progress(backtest) == {
        "id": backtest_id,
        "status": "done",
        "processed": 6,
        "total": 6,
        "percent": 100.0,
        "chunks_done": 3,
        "chunks_total": 3,
        "error": None,
    }

    ranks = {t: i for i, t in enumerate(tiers)}
    submitted = sorted(low + high, key=lambda a: a.id)
    expected_matrix = {b: dict.fromkeys(tiers, 0) for b in tiers}
    expected_changed = []
    for application in submitted:
        old, new = application.risk_tier, _expected_new_tier(application, ranks)
        expected_matrix[old][new] += 1
        if old != new:
            expected_changed.append(
                {
                    "reference": application.reference,
                    "title": application.current_revision.content["title"],
                    "baseline": old,
                    "new": new,
                }
            )
    result = backtest.result
    assert result["tiers"] == tiers
    assert result["matrix"] == expected_matrix
    assert result["changed"] == len(expected_changed) > 0
    assert result["changed_items"] == expected_changed
    assert result["errors"] == 0
    assert result["decisions"] == {
        "reject": {t: int(t == _expected_new_tier(high[1], ranks)) for t in tiers}
    }
    reference = result["reference"]
    assert reference["labelled"] == 3
    # low[0] (labelled low) is raised to medium by the draft; low[1] is labelled medium
    assert reference["per_tier"]["low"]["labelled"] == 1
    assert reference["per_tier"]["low"]["recall"] == 0.0
    assert reference["per_tier"]["medium"]["predicted"] == 2
    assert reference["per_tier"]["medium"]["precision"] == 0.5
    assert reference["per_tier"]["medium"]["recall"] == 1.0
    high_tier_new = _expected_new_tier(high[0], ranks)
    assert reference["high_recall"] == (1.0 if ranks[high_tier_new] >= ranks["high"] else 0.0)
    assert reference["low_raised_share"] == 0.0
    assert reference["per_tier"]["prohibited"]["precision"] is None

    items = db.scalars(select(BacktestItem).where(BacktestItem.backtest_id == backtest_id)).all()
    assert sorted(i.revision_id for i in items) == sorted(a.current_revision_id for a in submitted)
    assert {i.application_id: i.decision_outcome for i in items if i.decision_outcome} == {
        high[1].id: "reject"
    }
    assert (
        db.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "ruleset.backtest_start",
                AuditEvent.subject_id == str(draft.id),
            )
        ).one()
        is not None
    )


def test_same_rules_reuse_baseline_and_no_revision_finishes_at_once(app, db) -> None:
    ApplicationFactory(submitted=True)
    ApplicationFactory(submitted=True, high_tier=True)
    with app.app_context():
        session = database.session
        active = active_ruleset(session)
        empty = start_backtest(session, None, active, filters={"tier": "prohibited"})
        assert empty.status == "done" and empty.total == 0 and empty.chunks_total == 0
        assert empty.result["changed"] == 0 and empty.result["changed_items"] == []
        assert backtest_progress(empty)["percent"] == 100.0
        same = start_backtest(session, None, active)  # the published version against itself
        same_id = same.id
        database.commit()
    same = db.get(Backtest, same_id, populate_existing=True)
    assert same.status == "done" and same.processed == same.total == 2
    assert same.result["changed"] == 0
    assert sum(sum(row.values()) for row in same.result["matrix"].values()) == 2


def test_rerun_chunk_does_not_double_count_and_bad_input_fails(app, db) -> None:
    for _ in range(5):
        ApplicationFactory(submitted=True)
    with app.app_context():
        with pytest.raises(ValidationFailed) as unknown:
            start_backtest(db, None, active_ruleset(db), filters={"colour": "red"})
        assert "colour" in unknown.value.fields
        with pytest.raises(ValidationFailed) as bad_tier:
            start_backtest(db, None, active_ruleset(db), filters={"tier": "extreme"})
        assert "tier" in bad_tier.value.fields
        with pytest.raises(ValidationFailed):
            start_backtest(db, None, active_ruleset(db), filters={"status": "draft"})

        draft = _draft(db)
        backtest = start_backtest(db, None, draft, chunk_size=3)
        db.flush()
        database.rollback()  # drop the queued chunk jobs: this test runs them by hand
        ids = candidate_revision_ids(db, {})
        first, second = ids[:3], ids[3:]
        assert run_backtest_chunk(backtest.id, first) == 3
        assert run_backtest_chunk(backtest.id, first) == 0  # re-run: skipped, not counted
        db.refresh(backtest)
        assert (backtest.status, backtest.processed, backtest.chunks_done) == ("running", 3, 1)
        assert run_backtest_chunk(backtest.id, second) == 2
        assert run_backtest_chunk(backtest.id, second) == 0
        db.refresh(backtest)
        assert (backtest.status, backtest.processed, backtest.chunks_done) == ("done", 5, 2)
        count = db.scalar(select(func.count()).where(BacktestItem.backtest_id == backtest.id))
        assert count == 5

        # a chunk that fails marks the backtest failed with the reason: here the draft was
        # edited after the backtest started, so its figures would mix two rulesets
        failing = start_backtest(db, None, draft, chunk_size=10)
        db.flush()
        database.rollback()
        draft.rules[-1].condition = "'health' in domains"
        draft.content_hash = "0" * 64
        db.flush()
        with pytest.raises(RuntimeError, match="edited after the backtest started"):
            run_backtest_chunk(failing.id, ids)
        db.refresh(failing)
        assert failing.status == "failed" and failing.processed == 0
        assert "edited after the backtest started" in failing.error
        assert backtest_progress(failing)["error"] == failing.error
        # later chunks of a failed backtest do nothing
        assert run_backtest_chunk(failing.id, ids) == 0


# ----------------------------------------------------------------------------- real workers


def _submitted_in_bulk(session: Session, count: int) -> list[Application]:
    """``count`` queued applications triaged by the active ruleset (one in five high risk),
    written directly: submitting 300 through the full service would take most of the test."""
    developer = UserFactory()
    applications = []
    for n in range(count):
        body = content(**(HIGH_RISK if n % 5 == 0 else {}))
        body["title"] = f"{body['title']} {n}"
        application = Application(
            organization_id=developer.organization_id,
            submitter_id=developer.id,
            status=Status.queued,
            draft=body,
            submitted_at=utcnow(),
        )
        revision = Revision(
            application=application, number=1, content=body, submitted_by_id=developer.id
        )
        session.add_all([application, revision])
        applications.append((application, revision))
    session.flush()
    for application, revision in applications:
        application.current_revision_id = revision.id
        triage_revision(session, application, revision)
    session.flush()
    return [a for a, _r in applications]


def _worker_env(database_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REVIEWAPP_CONFIG="testing",
        REVIEWAPP_DATABASE_URL=database_url,
        REVIEWAPP_REDIS_URL=redis_url,
        REVIEWAPP_RQ_QUEUE_PREFIX=prefix,
    )
    return env


def test_two_rq_workers_share_the_chunks(database_url, redis_url, committed_db) -> None:
    applications = _submitted_in_bulk(committed_db, 300)
    committed_db.commit()
    prefix = f"test-bt-{uuid.uuid4().hex[:8]}"
    app = create_app(
        "testing", DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE_PREFIX=prefix
    )
    with app.app_context():
        session = database.session
        draft = _draft(session)
        backtest = start_backtest(session, None, draft, chunk_size=100)
        backtest_id = backtest.id
        database.commit()  # enqueues three chunk jobs on RQ
        from reviewapp.jobs import rq_queue

        assert rq_queue("low", app).count == 3
    database.state(app).engine.dispose()

    env = _worker_env(database_url, redis_url, prefix)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 90
    while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
        committed_db.expire_all()
        row = committed_db.get(Backtest, backtest_id)
        seen.append((row.processed, row.total))
        committed_db.rollback()
        time.sleep(0.05)
    outputs: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=30)
        outputs.append(out[-2000:] + err[-2000:])
        assert worker.returncode == 0, outputs[-1]

    committed_db.expire_all()
    backtest = committed_db.get(Backtest, backtest_id)
    assert backtest.status == "done", (backtest.error, outputs)
    assert backtest.processed == backtest.total == len(applications) == 300
    assert backtest.chunks_done == backtest.chunks_total == 3
    assert all(processed <= total for processed, total in seen)
    items = committed_db.scalar(select(func.count()).where(BacktestItem.backtest_id == backtest_id))
    distinct = committed_db.scalar(
        select(func.count(func.distinct(BacktestItem.revision_id))).where(
            BacktestItem.backtest_id == backtest_id
        )
    )
    assert items == distinct == 300
    matrix = backtest.result["matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == 300
    # every low-tier general-domain application is raised to medium by the draft
    assert matrix["low"]["low"] == 0
    assert backtest.result["changed"] == matrix["low"]["medium"] > 0


def test_a_backtest_waiting_behind_other_work_is_not_failed_as_stalled(
    database_url, redis_url, committed_db
) -> None:
    """The sweep fails a backtest silent for BACKTEST_STALL_SECONDS only when none of its
    chunks still waits in RQ: chunks queued behind other backtests mean it is waiting for a
    worker, not dead. Once its jobs are gone (a Redis flush, a lost queue) it is failed."""
    import datetime as dt

    from reviewapp.jobs import rq_queue
    from reviewapp.triage.backtest import fail_stalled_backtests

    _submitted_in_bulk(committed_db, 30)
    committed_db.commit()
    prefix = f"test-bt-{uuid.uuid4().hex[:8]}"
    app = create_app(
        "testing", DATABASE_URL=database_url, REDIS_URL=redis_url, RQ_QUEUE_PREFIX=prefix
    )
    later = utcnow() + dt.timedelta(hours=2)  # far past any stall limit
    with app.app_context():
        session = database.session
        backtest = start_backtest(session, None, _draft(session), chunk_size=10)
        database.commit()  # three chunk jobs wait on RQ; no worker runs
        queue = rq_queue("low", app)
        assert queue.count == 3
        assert fail_stalled_backtests(session, 900, now=later) == []
        database.commit()
        assert session.get(Backtest, backtest.id).status == "queued"
        queue.empty()  # the chunk jobs are lost
        assert fail_stalled_backtests(session, 900, now=later) == [backtest.id]
        database.commit()
        failed = session.get(Backtest, backtest.id)
        assert failed.status == "failed" and "Start the backtest again." in failed.error
    database.state(app).engine.dispose()


def test_an_imported_tier_label_outside_the_tiers_never_becomes_a_backtest_tier(
    app, db, tmp_path
) -> None:
    from reviewapp.applications.importer import REQUIRED_COLUMNS
    from reviewapp.cli import import_inventory

    def row(row_id: int, tier: str) -> str:
        values = dict.fromkeys(REQUIRED_COLUMNS, "")
        values.update(row_id=str(row_id), agency="Agency B", use_case_name=f"Case {row_id}")
        return ",".join(values[c] for c in REQUIRED_COLUMNS) + f",{tier}"

    path = tmp_path / "labelled.csv"
    path.write_text(
        "\n".join([",".join(REQUIRED_COLUMNS) + ",suggested_tier", row(900, "low"), row(901, "x")])
        + "\n",
        encoding="utf-8",
    )
    with app.app_context():
        result = import_inventory(db, path, commit=db.flush, progress=False)
    assert result["created"] == 2
    with app.app_context():
        session = database.session
        backtest_id = start_backtest(session, None, _draft(session)).id
        database.commit()
    backtest = db.get(Backtest, backtest_id, populate_existing=True)
    assert backtest is not None and backtest.status == "done", backtest and backtest.error
    assert "x" not in backtest.result["tiers"]
    assert backtest.result["reference"]["labelled"] == 1  # only the row labelled "low"
