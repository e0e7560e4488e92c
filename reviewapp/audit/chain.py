"""Tamper evidence for the audit log: a hash chain.

Each audit event stores ``prev_hash`` (the hash of the event before it, by id; ``GENESIS`` for
the first) and ``hash`` = SHA-256 of a canonical JSON document of its own fields plus
``prev_hash``. Editing an event changes its hash; deleting or inserting one breaks the link of
the next. ``flask --app wsgi audit verify`` recomputes the chain and names the first broken
event.

Ordering: on PostgreSQL, writers take a transaction-scoped advisory lock before appending, so
events are chained in the order they commit and the previous event is always committed; on
SQLite the write lock taken by the insert does the same. Hand-rolled (no library): the chain is
twenty lines of hashlib over the product's own rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from reviewapp.audit.models import AuditEvent

GENESIS = "0" * 64
#: pg_advisory_xact_lock key of the audit chain ("audit" in ASCII)
LOCK_KEY = 0x6175646974


def event_hash(event: AuditEvent, prev_hash: str) -> str:
    """SHA-256 (hex) of the event's canonical JSON (sorted keys, no spaces) and ``prev_hash``."""
    document = {
        "id": event.id,
        "actor_id": event.actor_id,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "created_at": event.created_at.isoformat() if event.created_at else None,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lock_chain(session: Session) -> None:
    """Serialize appends to the chain until the transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def link(session: Session, event: AuditEvent) -> None:
    """Give a flushed event its place in the chain (call after :func:`lock_chain` and flush)."""
    prev = session.scalar(
        select(AuditEvent.hash)
        .where(AuditEvent.id < event.id)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    event.prev_hash = prev or GENESIS
    event.hash = event_hash(event, event.prev_hash)


@dataclass
class ChainReport:
    """Result of :func:`verify_chain`: events checked, and the first problem (None: intact)."""

    checked: int
    broken_event_id: int | None = None
    problem: str = ""


def verify_chain(session: Session, *, batch: int = 2000) -> ChainReport:
    """Recompute every event's hash in id order; stop at the first broken link.

    Returns:
        A ChainReport naming the first event whose stored hash does not match its content
        (edited) or whose ``prev_hash`` is not the previous event's hash (an event before it
        was deleted, inserted or edited).
    """
    checked, last_id, prev = 0, 0, GENESIS
    while True:
        rows: list[Any] = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
        )
        if not rows:
            return ChainReport(checked)
        for event in rows:
            if event.prev_hash != prev:
                return ChainReport(
                    checked,
                    event.id,
                    f"event {event.id} ({event.action}) does not follow the event before it: an "
                    "earlier event was deleted, inserted or re-chained",
                )
            if event.hash != event_hash(event, prev):
                return ChainReport(
                    checked,
                    event.id,
                    f"event {event.id} ({event.action}) was changed after it was written",
                )
            prev = event.hash or ""
            checked += 1
            last_id = event.id
        session.expunge_all()
