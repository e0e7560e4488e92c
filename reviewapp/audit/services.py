"""Writing audit events and outbox rows (always inside the caller's transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from reviewapp.audit.chain import add_pending
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.auth.models import User


def current_request_id() -> str | None:
    """The id of the HTTP request being served (set by create_app's request hook) or, in a
    background job, of the request that enqueued it (see reviewapp.logs); else None."""
    from reviewapp.logs import current_request_id as _current

    return _current()


def record_event(
    session: Session,
    *,
    actor: User | None,
    action: str,
    subject_type: str,
    subject_id: Any,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record one audit event in the caller's transaction; it joins the hash chain
    (audit/chain.py) when that transaction commits.

    Args:
        actor: who did it; None for the system (jobs, imports).
        action: dotted verb, e.g. ``application.submit``.
        before/after: JSON-safe snapshots of the fields that changed.
    """
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        before=before,
        after=after,
        request_id=current_request_id(),
    )
    session.add(event)
    session.flush()
    add_pending(session, event)
    return event


def add_outbox_event(session: Session, kind: str, payload: dict[str, Any]) -> OutboxEvent:
    """Write a notification to the outbox in the caller's transaction and schedule delivery.

    Delivery runs after commit (inline, or as an RQ job). If enqueueing fails, the row stays
    pending and ``flask dispatch-outbox`` delivers it later: nothing is lost.

    In the same transaction, one webhook delivery row is written per active endpoint of the
    application's organization (found from ``payload["application"]``) that subscribes to
    ``kind``; each is sent after commit, and ``flask webhooks sweep`` finds any left pending.
    """
    from reviewapp.jobs import enqueue_after_commit
    from reviewapp.notifications.jobs import deliver_outbox_event
    from reviewapp.webhooks.jobs import deliver_webhook
    from reviewapp.webhooks.services import create_deliveries_for_event

    event = OutboxEvent(kind=kind, payload=payload)
    session.add(event)
    session.flush()
    enqueue_after_commit(deliver_outbox_event, event.id)
    for delivery_id in create_deliveries_for_event(session, event):
        enqueue_after_commit(deliver_webhook, delivery_id)
    return event
