"""Tamper evidence for the audit log: a hash chain.

Each audit event stores ``chain_seq`` (its place in the chain: 1, 2, 3, ...), ``prev_hash`` (the
hash of the event before it in the chain; ``GENESIS`` for the first) and ``hash`` = SHA-256 of a
canonical JSON document of its own fields plus ``prev_hash``. Editing an event changes its hash;
deleting or inserting one breaks the link of the next. ``flask --app wsgi audit verify``
recomputes the chain and names the first broken event.

Ordering: :func:`reviewapp.audit.services.record_event` only inserts the event; the events of a
transaction are linked when it commits (a ``before_commit`` listener, :func:`link_pending`). On
PostgreSQL the linking step takes a transaction-scoped advisory lock, so the chain grows in
commit order and the previous event is always committed; the lock is held only from that step
to the commit (two short statements), not for the whole transaction, so audited writes no
longer run one at a time (measured in bench/README.md). The chain order is ``chain_seq``, not
the id: ids come from a sequence when a row is inserted, which is not commit order. On SQLite
the database write lock does the same. Hand-rolled (no library): the chain is a few lines of
hashlib over the product's own rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, inspect, select, text
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


#: session.info key of the events recorded in the open transaction and not yet linked
PENDING_KEY = "audit_unlinked"


def lock_chain(session: Session) -> None:
    """Serialize appends to the chain until the transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def add_pending(session: Session, event: AuditEvent) -> None:
    """Remember a flushed event so :func:`link_pending` chains it when the transaction commits."""
    session.info.setdefault(PENDING_KEY, []).append(event)


def link_pending(session: Session) -> int:
    """Chain the events recorded in ``session``'s transaction (in id order); return how many.

    Runs from the ``before_commit`` listener below, so it holds the chain lock only until the
    commit that follows. Events rolled back (a savepoint) in the meantime are skipped.
    """
    pending: list[AuditEvent] = session.info.pop(PENDING_KEY, [])
    events = sorted(
        (e for e in pending if inspect(e).persistent and e.chain_seq is None),
        key=lambda e: e.id,
    )
    if not events:
        return 0
    lock_chain(session)
    last = session.execute(
        select(AuditEvent.chain_seq, AuditEvent.hash)
        .where(AuditEvent.chain_seq.is_not(None))
        .order_by(AuditEvent.chain_seq.desc())
        .limit(1)
    ).first()
    seq: int = (last[0] or 0) if last else 0
    prev: str = (last[1] or GENESIS) if last else GENESIS
    for event in events:
        seq += 1
        event.chain_seq = seq
        event.prev_hash = prev
        event.hash = event_hash(event, prev)
        prev = event.hash
    return len(events)


@sa_event.listens_for(Session, "before_commit")
def _link_before_commit(session: Session) -> None:
    if session.info.get(PENDING_KEY):
        link_pending(session)
        session.flush()


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_at_transaction_end(session: Session, transaction: Any) -> None:
    # the outermost transaction ended (committed: already linked; rolled back: the events are
    # gone); a savepoint's end keeps the list, and link_pending skips rows no longer persistent
    if transaction.parent is None:
        session.info.pop(PENDING_KEY, None)


@dataclass
class ChainReport:
    """Result of :func:`verify_chain`: events checked, and the first problem (None: intact)."""

    checked: int
    broken_event_id: int | None = None
    problem: str = ""


def verify_chain(session: Session, *, batch: int = 2000) -> ChainReport:
    """Recompute every event's hash in chain order; stop at the first broken link.

    Returns:
        A ChainReport naming the first event whose stored hash does not match its content
        (edited), whose ``prev_hash`` is not the previous event's hash (an event before it was
        deleted, inserted or edited), or that is committed but not in the chain at all
        (written around the application).
    """
    outside = session.scalar(select(func.min(AuditEvent.id)).where(AuditEvent.chain_seq.is_(None)))
    checked, last_seq, prev = 0, 0, GENESIS
    while True:
        rows: list[Any] = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.chain_seq > last_seq)
                .order_by(AuditEvent.chain_seq)
                .limit(batch)
            )
        )
        if not rows:
            break
        for event in rows:
            if event.prev_hash != prev or event.chain_seq != last_seq + 1:
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
            last_seq = event.chain_seq
        session.expunge_all()
    if outside is not None:
        return ChainReport(
            checked,
            outside,
            f"event {outside} is not in the chain: it was written around the application",
        )
    return ChainReport(checked)
