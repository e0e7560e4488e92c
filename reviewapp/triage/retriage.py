"""Re-triage after a publish or rollback: unclaimed queued applications move to the new ruleset's
tier; claimed or decided ones keep theirs, with a shadow result noting where the new ruleset
differs.

Re-triage never takes an application out of a queue that something other than triage put it in
(a reviewer's escalation, a senior's hand-back, the fast track's QA sample): the queue stays, only
tier, flags and SLA target follow the new ruleset. Every change it makes to an application is an
``application.retriage`` audit event naming the ruleset version."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Revision, Status
from reviewapp.audit.services import record_event
from reviewapp.jobs import run_in_app_context
from reviewapp.review.fast_track import QA_QUEUE
from reviewapp.review.services import APPEALS_QUEUE, ESCALATION_QUEUE
from reviewapp.triage.models import RulesetStatus, RulesetVersion, TriageResult
from reviewapp.triage.services import latest_triage_result, record_shadow_result, triage_revision

log = logging.getLogger(__name__)

BATCH = 500
RETRIAGE_LOCK_CLASS = 7301  # first key of the PostgreSQL advisory lock (second: version id)
#: statuses whose application keeps its tier when the ruleset changes (someone is on it or it is decided)
KEEP_TIER = (
    Status.in_review,
    Status.awaiting_second_approval,
    Status.mitigations_requested,
    Status.approved,
    Status.rejected,
    Status.appealed,
)


@run_in_app_context
def retriage_open_applications(version_id: int) -> dict[str, int]:
    """Re-triage every unclaimed queued application under ruleset ``version_id`` (if it is still
    the active one), in batches of 500 with a commit each, so progress is visible and a crash
    resumes where it stopped. Returns {"retriaged", "changed", "noted"}."""
    from reviewapp.extensions import db

    session = db.session
    version = session.get(RulesetVersion, version_id)
    if version is None or version.status != RulesetStatus.published:
        return {"retriaged": 0, "changed": 0, "noted": 0}
    with _only_runner(version_id) as alone:
        if not alone:
            log.info("re-triage under ruleset v%s is already running elsewhere", version.number)
            return {"retriaged": 0, "changed": 0, "noted": 0}
        return _retriage(session, version)


@contextlib.contextmanager
def _only_runner(version_id: int) -> Iterator[bool]:
    """Yield True when this process may re-triage under ``version_id`` (False: another one is).

    On PostgreSQL a session advisory lock, held on a connection of its own for the whole run:
    a worker that dies closes its connection, so PostgreSQL frees the lock at once and the next
    run (``flask sweep`` enqueues one) carries on. SQLite (one process, inline jobs): always True.
    """
    from reviewapp.extensions import db

    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as conn:
        key = {"cls": RETRIAGE_LOCK_CLASS, "obj": version_id}
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:cls, :obj)"), key).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:cls, :obj)"), key)
                conn.commit()


def _retriage(session: Session, version: RulesetVersion) -> dict[str, int]:
    counts = {"retriaged": 0, "changed": 0, "noted": 0}
    unclaimed = (Application.status == Status.queued, Application.claimed_by_id.is_(None))
    for application, revision, latest in _stale_applications(session, version.id, *unclaimed):
        _drop_stale_result(session, revision.id, version.id)
        before = _placement(application)
        routed = is_routed_by_hand(application, latest)
        triage_revision(session, application, revision, version=version, keep_queued_at=True)
        if routed:
            application.queue = before["queue"]
        counts["retriaged"] += 1
        after = _placement(application)
        if after != before:
            counts["changed"] += 1
            changed = [k for k in after if after[k] != before[k]]
            record_event(
                session,
                actor=None,
                action="application.retriage",
                subject_type="application",
                subject_id=application.reference,
                before={k: before[k] for k in changed},
                after={
                    **{k: after[k] for k in changed},
                    "ruleset_version": version.number,
                    **({"queue_kept": before["queue"]} if routed else {}),
                },
            )
    for application, revision, _ in _stale_applications(
        session, version.id, Application.status.in_(KEEP_TIER)
    ):
        result = record_shadow_result(session, revision, version)
        if result is not None and result.tier != application.risk_tier:
            counts["noted"] += 1
    log.info("re-triage under ruleset v%s: %s", version.number, counts)
    return counts


#: queues only people (or the fast track's sampling) route to; used when an application has no
#: triage result to compare its queue with
ROUTED_QUEUES = frozenset({ESCALATION_QUEUE, APPEALS_QUEUE, QA_QUEUE})


def is_routed_by_hand(application: Application, latest: TriageResult | None) -> bool:
    """True when the application sits in a queue that triage did not choose: a reviewer escalated
    it, a senior handed it back, the fast track sampled it for QA. Triage puts an application in
    the queue its result names, so any other queue was chosen after triage, and re-triage leaves
    it there."""
    if latest is None:
        return application.queue in ROUTED_QUEUES
    return application.queue != latest.queue


def _placement(application: Application) -> dict[str, Any]:
    """What re-triage may change on an application, JSON-safe (the audited before/after)."""
    due = application.sla_due_at
    return {
        "risk_tier": application.risk_tier,
        "queue": application.queue,
        "flags": list(application.flags or []),
        "sla_due_at": due.isoformat() if due is not None else None,
    }


def _stale_applications(
    session: Session, version_id: int, *conditions: Any
) -> Iterator[tuple[Application, Revision, TriageResult | None]]:
    """Applications matching ``conditions`` whose current revision is not yet triaged under
    ``version_id``, with the revision's newest real triage result, in id order, BATCH at a time;
    the work done on each batch is committed before the next is read, so progress is visible
    and a crash resumes where it stopped."""
    from reviewapp.extensions import db

    last_id = 0
    while True:
        batch = session.scalars(
            select(Application)
            .where(
                Application.id > last_id, Application.current_revision_id.is_not(None), *conditions
            )
            .order_by(Application.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        for application in batch:
            last_id = application.id
            revision = session.get(Revision, application.current_revision_id)
            if revision is None:
                continue
            latest = latest_triage_result(session, revision.id)
            if latest is None or latest.ruleset_version_id != version_id:
                yield application, revision, latest
        db.commit()


def _drop_stale_result(session: Session, revision_id: int, version_id: int) -> None:
    """Remove an older real result of the same version (from an earlier activation, e.g. before
    a rollback) so the fresh one can take its place; it is identical by construction."""
    old = session.scalars(
        select(TriageResult).where(
            TriageResult.revision_id == revision_id,
            TriageResult.ruleset_version_id == version_id,
            TriageResult.shadow.is_(False),
        )
    ).first()
    if old is not None:
        session.delete(old)
        session.flush()


def retriage_progress(session: Session, version: RulesetVersion) -> dict[str, int]:
    """How far re-triage under ``version`` got: {"done", "total"} over unclaimed queued
    applications; done = those whose newest real triage result is from ``version``."""
    open_apps = select(Application.current_revision_id).where(
        Application.status == Status.queued, Application.claimed_by_id.is_(None)
    )
    total = session.scalar(select(func.count()).select_from(open_apps.subquery())) or 0
    newest = (
        select(TriageResult.revision_id, func.max(TriageResult.id).label("newest_id"))
        .where(TriageResult.shadow.is_(False), TriageResult.revision_id.in_(open_apps))
        .group_by(TriageResult.revision_id)
        .subquery()
    )
    done = (
        session.scalar(
            select(func.count())
            .select_from(newest)
            .join(TriageResult, TriageResult.id == newest.c.newest_id)
            .where(TriageResult.ruleset_version_id == version.id)
        )
        or 0
    )
    return {"done": int(done), "total": int(total)}


def resume_interrupted_retriage(session: Session) -> int | None:
    """Enqueue re-triage under the active ruleset when some unclaimed queued application is not
    yet triaged under it (a worker died mid-run, or Redis was down at publish). Harmless while a
    run is going on: the new job sees the advisory lock and stops. Called by ``flask sweep``.

    Returns:
        the active ruleset's number when a run was enqueued (or run inline), else None.
    """
    from reviewapp.jobs import enqueue_after_commit

    active = session.scalars(
        select(RulesetVersion).where(RulesetVersion.status == RulesetStatus.published)
    ).first()
    if active is None:
        return None
    progress = retriage_progress(session, active)
    if progress["done"] >= progress["total"]:
        return None
    enqueue_after_commit(retriage_open_applications, active.id)
    return active.number
