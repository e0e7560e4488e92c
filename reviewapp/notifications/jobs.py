"""Jobs that deliver outbox rows. Delivery is at-least-once; the event id is in every message."""

from __future__ import annotations

import logging

from sqlalchemy import select

from reviewapp.audit.models import OutboxEvent
from reviewapp.db import is_postgres, utcnow
from reviewapp.jobs import job_app, run_in_app_context
from reviewapp.notifications.email import build_message, send_message

log = logging.getLogger(__name__)


@run_in_app_context
def deliver_outbox_event(event_id: int) -> bool:
    """Deliver one outbox row (email). Returns True when delivered now, False when it was
    already delivered or is gone. Errors are recorded on the row and re-raised so RQ retries."""
    from reviewapp.extensions import db

    app = job_app()
    session = db.session
    stmt = select(OutboxEvent).where(OutboxEvent.id == event_id)
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    event = session.scalars(stmt).first()
    if event is None or event.delivered_at is not None:
        session.rollback()
        return False
    event.attempts += 1
    try:
        payload = event.payload
        if payload.get("to"):
            msg = build_message(
                app,
                to=list(payload["to"]),
                subject=str(payload["subject"]),
                body=str(payload["body"]),
                event_id=f"evt-{event.id}",
            )
            send_message(app, msg)
    except Exception as exc:
        event.last_error = f"{type(exc).__name__}: {exc}"[:1000]
        db.commit()
        raise
    event.delivered_at = utcnow()
    event.last_error = None
    db.commit()
    return True


@run_in_app_context
def dispatch_pending(limit: int = 500) -> int:
    """Deliver (or enqueue, with Redis) every pending outbox row; returns how many were handled."""
    from reviewapp.extensions import db
    from reviewapp.jobs import rq_queue

    app = job_app()
    ids = list(
        db.session.scalars(
            select(OutboxEvent.id)
            .where(OutboxEvent.delivered_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
    )
    db.session.rollback()
    for event_id in ids:
        if app.config.get("REDIS_URL"):
            rq_queue(app=app).enqueue(deliver_outbox_event, event_id, job_timeout=120)
        else:
            try:
                deliver_outbox_event(event_id)
            except Exception:  # noqa: BLE001 - keep going; the row records the error
                log.exception("delivery of outbox event %s failed", event_id)
    return len(ids)
