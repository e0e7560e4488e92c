"""Backtests: run a ruleset version over past revisions and compare it with the active ruleset.

:func:`start_backtest` picks the current revision of every submitted application (optionally
filtered), records a :class:`~reviewapp.triage.models.Backtest` and, once the caller commits,
enqueues one :func:`run_backtest_chunk` job per chunk of revision ids. Several RQ workers share
the chunks; each chunk writes one :class:`~reviewapp.triage.models.BacktestItem` per revision and
bumps the progress counters with one atomic ``UPDATE ... RETURNING``. The job that completes the
last chunk aggregates the items with ``GROUP BY`` queries into ``Backtest.result``::

    {
      "tiers": ["low", "medium", "high", "prohibited"],          # lowest first
      "matrix": {baseline_tier: {new_tier: count}},              # every tier x every tier
      "changed": int,                                            # items whose tier changed
      "changed_items": [{"reference", "title", "baseline", "new"}],  # first 500 by application id
      "decisions": {outcome: {new_tier: count}},                 # last decision on that revision
      "reference": {                                             # items with a reference tier
        "per_tier": {tier: {"precision", "recall", "predicted", "labelled"}},
        "high_recall": float | None,       # labelled high that land in high or above
        "low_raised_share": float | None,  # labelled low that land in high or above
        "labelled": int,
      },
      "errors": int,                                             # rule errors of the new ruleset
    }

Re-running a chunk is harmless: revisions already recorded for the backtest are skipped, rows are
inserted with ``ON CONFLICT DO NOTHING`` and only newly inserted rows are counted.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections import defaultdict
from typing import Any, cast

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Revision, Status
from reviewapp.audit.services import record_event
from reviewapp.auth.models import User
from reviewapp.db import utcnow
from reviewapp.errors import ValidationFailed
from reviewapp.jobs import enqueue_after_commit, run_in_app_context
from reviewapp.review.models import Decision
from reviewapp.triage.engine import canonical_hash
from reviewapp.triage.models import (
    Backtest,
    BacktestItem,
    BacktestStatus,
    RulesetVersion,
    TriageResult,
)
from reviewapp.triage.services import (
    active_ruleset,
    compiled_ruleset,
    ruleset_document,
    tiers_in_order,
)

log = logging.getLogger(__name__)

FILTER_KEYS = ("tier", "status", "organization_id")
EXCLUDED_STATUSES = (Status.draft, Status.withdrawn)
CHANGED_ITEMS_LIMIT = 500
BACKTEST_QUEUE = "low"  # long batch work must not delay notifications on "default"
_INSERT_BATCH = 500  # rows per INSERT statement (8 parameters each; far below driver limits)
_BACKTEST_TABLE = cast(Table, Backtest.__table__)
_ITEM_TABLE = cast(Table, BacktestItem.__table__)


# ----------------------------------------------------------------------------- starting


def validate_filters(session: Session, filters: dict[str, Any] | None) -> dict[str, Any]:
    """Normalised backtest filters; empty values are dropped.

    Keys: ``tier`` (a risk tier name, compared with the application's current tier),
    ``status`` (an application status other than draft/withdrawn), ``organization_id`` (int).

    Raises:
        ValidationFailed: for an unknown key or value, with ``fields`` naming it.
    """
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in (filters or {}).items():
        if key not in FILTER_KEYS:
            errors[str(key)] = f"unknown filter; use one of: {', '.join(FILTER_KEYS)}"
            continue
        if value is None or value == "":
            continue
        if key == "tier":
            names = [t.name for t in tiers_in_order(session)]
            if value not in names:
                errors[key] = f"unknown tier {value!r}; use one of: {', '.join(names)}"
                continue
            clean[key] = str(value)
        elif key == "status":
            allowed = [s.value for s in Status if s not in EXCLUDED_STATUSES]
            if value not in allowed:
                errors[key] = f"unknown status {value!r}; use one of: {', '.join(allowed)}"
                continue
            clean[key] = str(value)
        else:
            try:
                number = int(value)
            except (TypeError, ValueError):
                number = 0
            if number <= 0 or isinstance(value, bool):
                errors[key] = f"organization_id must be a positive whole number, not {value!r}"
                continue
            clean[key] = number
    if errors:
        raise ValidationFailed("The backtest filters are not valid.", fields=errors)
    return clean


def candidate_revision_ids(session: Session, filters: dict[str, Any]) -> list[int]:
    """Current revision ids of the submitted applications matching ``filters``, ascending."""
    stmt = select(Application.current_revision_id).where(
        Application.current_revision_id.is_not(None),
        Application.status.not_in([s.value for s in EXCLUDED_STATUSES]),
    )
    if "tier" in filters:
        stmt = stmt.where(Application.risk_tier == filters["tier"])
    if "status" in filters:
        stmt = stmt.where(Application.status == filters["status"])
    if "organization_id" in filters:
        stmt = stmt.where(Application.organization_id == filters["organization_id"])
    return sorted(int(i) for i in session.scalars(stmt) if i is not None)


def start_backtest(
    session: Session,
    actor: User | None,
    version: RulesetVersion,
    *,
    filters: dict[str, Any] | None = None,
    chunk_size: int = 1000,
) -> Backtest:
    """Record a backtest of ``version`` against the active ruleset and enqueue its chunks.

    The chunk jobs are enqueued after the caller commits (``db.commit()``); with no matching
    revision the backtest is done at once with an empty result. Flushes, never commits.

    Raises:
        ValidationFailed: unknown filter key or value, or a chunk size below 1.
        NotFound: no ruleset is published (there is no baseline).
    """
    if chunk_size < 1:
        raise ValidationFailed("chunk_size must be at least 1", fields={"chunk_size": "below 1"})
    clean = validate_filters(session, filters)
    baseline = active_ruleset(session)
    ids = candidate_revision_ids(session, clean)
    chunks = [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]
    backtest = Backtest(
        ruleset_version_id=version.id,
        baseline_version_id=baseline.id,
        content_hash=_content_hash(version),
        status=BacktestStatus.queued,
        filters=clean,
        total=len(ids),
        processed=0,
        chunks_total=len(chunks),
        chunks_done=0,
        created_by_id=actor.id if actor is not None else None,
    )
    session.add(backtest)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="ruleset.backtest_start",
        subject_type="ruleset_version",
        subject_id=version.id,
        after={
            "backtest_id": backtest.id,
            "baseline_version_id": baseline.id,
            "content_hash": backtest.content_hash,
            "filters": clean,
            "total": len(ids),
            "chunks": len(chunks),
        },
    )
    if not chunks:
        now = utcnow()
        backtest.status = BacktestStatus.done
        backtest.started_at = now
        backtest.finished_at = now
        backtest.result = empty_result([t.name for t in tiers_in_order(session)])
        session.flush()
        return backtest
    for index, chunk in enumerate(chunks):
        enqueue_after_commit(
            run_backtest_chunk,
            backtest.id,
            chunk,
            queue=BACKTEST_QUEUE,
            job_id=chunk_job_id(backtest, index),
        )
    return backtest


def chunk_job_id(backtest: Backtest, index: int) -> str:
    """The RQ job id of chunk ``index`` (0-based) of ``backtest``: the queue prefix, the id and
    the creation time (microseconds) make it unique across databases sharing one Redis."""
    stamp = int(backtest.created_at.timestamp() * 1_000_000)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", str(current_app.config["RQ_QUEUE_PREFIX"]))
    return f"{prefix}-backtest-{backtest.id}-{stamp}-chunk-{index}"


def _chunks_waiting(backtest: Backtest) -> bool:
    """True when a chunk job of ``backtest`` still waits in RQ for a worker (queued, deferred
    or scheduled): the backtest is behind other work, not stalled. Started jobs do not count
    (a live chunk beats its heartbeat; RQ kills one running past its 600 s timeout). False in
    the inline mode and when Redis cannot be asked (then the heartbeat rule alone decides)."""
    from rq.job import Job, JobStatus

    from reviewapp.jobs import redis_connection

    connection = redis_connection()
    if connection is None or not backtest.chunks_total:
        return False
    ids = [chunk_job_id(backtest, i) for i in range(backtest.chunks_total)]
    waiting = {JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED}
    try:
        jobs = Job.fetch_many(ids, connection=connection)
        return any(job is not None and job.get_status(refresh=False) in waiting for job in jobs)
    except RedisError:
        log.warning("backtest %s: could not ask Redis for its chunk jobs", backtest.id)
        return False


def _content_hash(version: RulesetVersion) -> str:
    return version.content_hash or canonical_hash(ruleset_document(version))


# ----------------------------------------------------------------------------- the job


@run_in_app_context
def run_backtest_chunk(backtest_id: int, revision_ids: list[int]) -> int:
    """Evaluate one chunk of a backtest; returns how many items it newly recorded.

    The job completing the last chunk aggregates the result and marks the backtest done. Any
    error marks the backtest failed (``error`` holds the exception text) and is re-raised.
    """
    from reviewapp.extensions import db

    try:
        return _run_chunk(db.session, backtest_id, [int(i) for i in revision_ids])
    except Exception as exc:
        db.rollback()
        _mark_failed(db.session, backtest_id, exc)
        db.commit()
        raise


def _run_chunk(session: Session, backtest_id: int, revision_ids: list[int]) -> int:
    from reviewapp.extensions import db

    table = _BACKTEST_TABLE
    # populate_existing: inline runs share the session, whose objects are not expired on commit
    backtest = session.get(Backtest, backtest_id, populate_existing=True)
    if backtest is None or backtest.status in (BacktestStatus.failed, BacktestStatus.done):
        session.rollback()
        return 0
    now = utcnow()
    session.execute(
        update(table)
        .where(
            table.c.id == backtest_id,
            table.c.status.in_([BacktestStatus.queued.value, BacktestStatus.running.value]),
        )
        .values(
            status=BacktestStatus.running.value,
            started_at=func.coalesce(table.c.started_at, now),
            heartbeat_at=now,  # a chunk is alive (see fail_stalled_backtests)
        )
    )
    # commit at once: holding this row lock for the whole chunk would make the other
    # workers' first chunks wait for it
    db.commit()
    draft = session.get(RulesetVersion, backtest.ruleset_version_id, populate_existing=True)
    baseline = session.get(RulesetVersion, backtest.baseline_version_id)
    if draft is None or baseline is None:  # pragma: no cover - FKs cascade / restrict
        raise RuntimeError("the backtest's ruleset versions are gone")
    if _content_hash(draft) != backtest.content_hash:
        raise RuntimeError(
            f"ruleset version {draft.number} was edited after the backtest started; "
            "start a new backtest"
        )
    same_rules = _content_hash(draft) == _content_hash(baseline)

    existing = set(
        session.scalars(
            select(BacktestItem.revision_id).where(
                BacktestItem.backtest_id == backtest_id,
                BacktestItem.revision_id.in_(revision_ids),
            )
        )
    )
    todo = [i for i in revision_ids if i not in existing]
    rows = _load_revisions(session, todo, baseline.id) if todo else []

    new_compiled = None if same_rules else compiled_ruleset(session, draft)
    baseline_compiled = compiled_ruleset(session, baseline) if new_compiled is not None else None
    # Unchanged rules are not re-evaluated: a draft rule whose fingerprint equals the baseline
    # rule of the same key has the baseline's stored result for this revision.
    reusable: set[str] = set()
    if new_compiled is not None and baseline_compiled is not None:
        base_prints = baseline_compiled.fingerprints
        reusable = {k for k, fp in new_compiled.fingerprints.items() if base_prints.get(k) == fp}
    items: list[dict[str, Any]] = []
    for row in rows:
        stored_tier, stored_errors = row.stored_tier, row.stored_errors
        if stored_tier is None:
            if baseline_compiled is None:
                baseline_compiled = compiled_ruleset(session, baseline)
            outcome = baseline_compiled.evaluate(row.content)
            stored_tier, stored_errors = outcome.tier, outcome.errors
        if new_compiled is None:
            # unchanged rules are not re-evaluated: the new tier is the baseline tier
            new_tier, errors = stored_tier, len(stored_errors or [])
        else:
            known = None
            if row.stored_fired is not None and reusable:
                errored = {e.get("rule") for e in (row.stored_errors or [])}
                fired_keys = {f["key"] for f in row.stored_fired}
                known = {k: k in fired_keys for k in reusable if k not in errored}
            outcome = new_compiled.evaluate(row.content, known)
            new_tier, errors = outcome.tier, len(outcome.errors)
        items.append(
            {
                "backtest_id": backtest_id,
                "revision_id": row.revision_id,
                "application_id": row.application_id,
                "baseline_tier": stored_tier,
                "new_tier": new_tier,
                "reference_tier": row.reference_tier,
                "decision_outcome": row.decision_outcome,
                "errors": errors,
            }
        )
    inserted = _insert_items(session, items)
    vanished = len(todo) - len(rows)  # revisions deleted since the backtest started
    # A chunk counts once: when it recorded rows now, or on its first run when every revision
    # of it has vanished. A re-run (everything already recorded) changes nothing.
    if inserted == 0 and not (todo and not existing and not rows):
        db.commit()
        return 0
    done, chunks_total = session.execute(
        update(table)
        .where(table.c.id == backtest_id)
        .values(
            processed=table.c.processed + inserted,
            total=table.c.total - (vanished if not existing else 0),
            chunks_done=table.c.chunks_done + 1,
            heartbeat_at=utcnow(),
        )
        .returning(table.c.chunks_done, table.c.chunks_total)
    ).one()
    if done >= chunks_total:
        _finish(session, backtest_id)
    db.commit()
    return inserted


def _load_revisions(session: Session, revision_ids: list[int], baseline_id: int) -> list[Any]:
    stmt = (
        select(
            Revision.id.label("revision_id"),
            Revision.application_id,
            Revision.content,
            Application.reference_tier,
            Decision.outcome.label("decision_outcome"),
            TriageResult.tier.label("stored_tier"),
            TriageResult.errors.label("stored_errors"),
            TriageResult.fired.label("stored_fired"),
        )
        .join(Application, Application.id == Revision.application_id)
        .outerjoin(
            Decision,
            and_(
                Decision.id == Application.last_decision_id,
                Decision.revision_id == Revision.id,
            ),
        )
        .outerjoin(
            TriageResult,
            and_(
                TriageResult.revision_id == Revision.id,
                TriageResult.ruleset_version_id == baseline_id,
                TriageResult.shadow.is_(False),
            ),
        )
        .where(Revision.id.in_(revision_ids))
        .order_by(Revision.id)
    )
    return list(session.execute(stmt))


def _insert_items(session: Session, items: list[dict[str, Any]]) -> int:
    """Insert rows, skipping (backtest, revision) pairs already present; returns rows inserted."""
    if not items:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    table = _ITEM_TABLE
    inserted = 0
    for start in range(0, len(items), _INSERT_BATCH):
        stmt = (
            insert(table)
            .values(items[start : start + _INSERT_BATCH])
            .on_conflict_do_nothing(index_elements=["backtest_id", "revision_id"])
            .returning(table.c.id)
        )
        inserted += len(session.execute(stmt).all())
    return inserted


def _mark_failed(session: Session, backtest_id: int, exc: BaseException) -> None:
    table = _BACKTEST_TABLE
    session.execute(
        update(table)
        .where(table.c.id == backtest_id, table.c.status != BacktestStatus.done.value)
        .values(
            status=BacktestStatus.failed.value,
            error=f"{type(exc).__name__}: {exc}"[:500],
            finished_at=utcnow(),
        )
    )


def fail_stalled_backtests(
    session: Session, stall_seconds: float, *, now: dt.datetime | None = None
) -> list[int]:
    """Mark failed every queued or running backtest with no sign of life for ``stall_seconds``:
    its worker died (killed, out of memory, machine restart) or its chunks were never enqueued
    (Redis down when it started). The page then shows the error and the admin starts it again.

    "Sign of life" is ``heartbeat_at`` (set when a chunk starts and when it finishes), else
    ``created_at``. ``stall_seconds`` must exceed the chunk job timeout (600 s) so a slow live
    chunk is never failed. A backtest with a chunk job still waiting in RQ (behind other
    backtests' chunks) is not stalled and is left alone. A chunk that runs after its backtest
    was failed sees the failed status and does nothing.
    Flushes, never commits.

    Returns:
        the ids of the backtests marked failed, ascending.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=stall_seconds)
    stmt = (
        select(Backtest)
        .where(
            Backtest.status.in_([BacktestStatus.queued.value, BacktestStatus.running.value]),
            func.coalesce(Backtest.heartbeat_at, Backtest.created_at) < cutoff,
        )
        .order_by(Backtest.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    failed = []
    minutes = max(1, round(stall_seconds / 60))
    for backtest in session.scalars(stmt):
        if _chunks_waiting(backtest):
            continue  # waiting for a free worker behind other backtests: not stalled
        backtest.status = BacktestStatus.failed
        backtest.finished_at = now
        backtest.error = (
            f"Stopped: no progress for over {minutes} minute{'s' if minutes != 1 else ''}; the "
            f"background worker running it stopped (restart, crash or out of memory) after "
            f"{backtest.chunks_done} of {backtest.chunks_total} chunk"
            f"{'s' if backtest.chunks_total != 1 else ''}. Start the backtest again."
        )
        failed.append(backtest.id)
        log.warning("backtest %s stalled; marked failed", backtest.id)
    session.flush()
    return failed


# ----------------------------------------------------------------------------- the result


def empty_result(tiers: list[str]) -> dict[str, Any]:
    """The result of a backtest over no revision."""
    return aggregate_counts(tiers, [], [], [], [], 0)


def _finish(session: Session, backtest_id: int) -> None:
    tiers = [t.name for t in tiers_in_order(session)]
    item = BacktestItem
    of_this = item.backtest_id == backtest_id
    matrix_rows = session.execute(
        select(item.baseline_tier, item.new_tier, func.count())
        .where(of_this)
        .group_by(item.baseline_tier, item.new_tier)
    ).all()
    decision_rows = session.execute(
        select(item.decision_outcome, item.new_tier, func.count())
        .where(of_this, item.decision_outcome.is_not(None))
        .group_by(item.decision_outcome, item.new_tier)
    ).all()
    reference_rows = session.execute(
        select(item.reference_tier, item.new_tier, func.count())
        .where(of_this, item.reference_tier.is_not(None))
        .group_by(item.reference_tier, item.new_tier)
    ).all()
    changed_rows = session.execute(
        select(
            item.application_id,
            Revision.content["title"].as_string(),
            item.baseline_tier,
            item.new_tier,
        )
        .join(Revision, Revision.id == item.revision_id)
        .where(of_this, item.baseline_tier != item.new_tier)
        .order_by(item.application_id, item.revision_id)
        .limit(CHANGED_ITEMS_LIMIT)
    ).all()
    errors = session.scalar(select(func.coalesce(func.sum(item.errors), 0)).where(of_this)) or 0
    result = aggregate_counts(
        tiers,
        [(str(a), str(b), int(n)) for a, b, n in matrix_rows],
        [(str(a), str(b), int(n)) for a, b, n in decision_rows],
        [(str(a), str(b), int(n)) for a, b, n in reference_rows],
        [
            {
                "reference": f"APP-{app_id:06d}",
                "title": title or "",
                "baseline": old,
                "new": new,
            }
            for app_id, title, old, new in changed_rows
        ],
        int(errors),
    )
    table = _BACKTEST_TABLE
    session.execute(
        update(table)
        .where(table.c.id == backtest_id)
        .values(status=BacktestStatus.done.value, result=result, finished_at=utcnow())
    )


def aggregate_counts(
    tiers: list[str],
    matrix_rows: list[tuple[str, str, int]],
    decision_rows: list[tuple[str, str, int]],
    reference_rows: list[tuple[str, str, int]],
    changed_items: list[dict[str, Any]],
    errors: int,
) -> dict[str, Any]:
    """Build the result document from grouped counts (see the module docstring).

    ``matrix_rows`` are (baseline, new, n); ``decision_rows`` (outcome, new, n);
    ``reference_rows`` (reference tier, new, n). Definitions of precision, recall,
    ``high_recall`` and ``low_raised_share`` follow :func:`reviewapp.triage.evaluation.summarise`.
    """
    order = list(tiers)
    for rows in (matrix_rows, decision_rows, reference_rows):
        for a, b, _n in rows:
            for t in (a, b) if rows is not decision_rows else (b,):
                if t not in order:
                    order.append(t)  # a tier no longer configured still shows up
    matrix = {b: dict.fromkeys(order, 0) for b in order}
    changed = 0
    for old, new, n in matrix_rows:
        matrix[old][new] += n
        if old != new:
            changed += n
    decisions: dict[str, dict[str, int]] = {}
    for outcome, new, n in decision_rows:
        decisions.setdefault(outcome, dict.fromkeys(order, 0))[new] += n

    confusion: dict[tuple[str, str], int] = defaultdict(int)
    for label, new, n in reference_rows:
        confusion[(label, new)] += n
    at_least_high = set(order[order.index("high") :]) if "high" in order else set()
    per_tier = {}
    for t in order:
        predicted = sum(n for (_label, new), n in confusion.items() if new == t)
        labelled = sum(n for (label, _new), n in confusion.items() if label == t)
        both = confusion.get((t, t), 0)
        per_tier[t] = {
            "precision": both / predicted if predicted else None,
            "recall": both / labelled if labelled else None,
            "predicted": predicted,
            "labelled": labelled,
        }

    def _share_high(label: str) -> float | None:
        rows = {new: n for (lab, new), n in confusion.items() if lab == label}
        total = sum(rows.values())
        if not total:
            return None
        return sum(n for new, n in rows.items() if new in at_least_high) / total

    return {
        "tiers": order,
        "matrix": matrix,
        "changed": changed,
        "changed_items": changed_items,
        "decisions": decisions,
        "reference": {
            "per_tier": per_tier,
            "high_recall": _share_high("high"),
            "low_raised_share": _share_high("low"),
            "labelled": sum(confusion.values()),
        },
        "errors": errors,
    }


# ----------------------------------------------------------------------------- progress


def backtest_progress(backtest: Backtest) -> dict[str, Any]:
    """Progress for the JSON endpoint: ``{"id", "status", "processed", "total", "percent",
    "chunks_done", "chunks_total", "error"}``; ``percent`` is 0-100 with one decimal."""
    total = backtest.total or 0
    processed = min(backtest.processed or 0, total)
    if backtest.status == BacktestStatus.done:
        percent = 100.0
    elif total:
        percent = math.floor(processed * 1000 / total) / 10
    else:
        percent = 0.0
    return {
        "id": backtest.id,
        "status": backtest.status,
        "processed": processed,
        "total": total,
        "percent": percent,
        "chunks_done": backtest.chunks_done,
        "chunks_total": backtest.chunks_total,
        "error": backtest.error,
    }
