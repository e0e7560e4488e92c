"""Per-process cache of the small reference tables every queue page view reads: the queues and
the roles that may work them, the risk tiers, the policy sections and the response templates.

Each read checks a fingerprint of exactly the cached columns, computed by the database in one
statement (PostgreSQL: the md5 of the rows as JSON; SQLite: the JSON text itself), and reloads
the tables when it differs from the cached one. So a change committed by any process (admin
page, ``flask seed``, plain SQL) is seen by the next read, and the queue roles, which decide who
may see and claim what, are never served stale; a hit costs one small statement instead of five
ORM queries and their objects. A change between the fingerprint and the reload only causes one
more reload on the next read (the cached fingerprint is the older one).

The cache lives in ``app.extensions`` (one per app and process); outside an app context every
call loads from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from reviewapp.policies.models import PolicySection, ResponseTemplate
from reviewapp.review.models import Queue, RiskTier

_EXTENSION_KEY = "reviewapp.reference_data"

# the columns below are exactly those ReferenceData holds: a change to any other column (a
# template's body, a tier's SLA hours) does not need a reload
_PG_FINGERPRINT = text(
    """
    SELECT md5(json_build_array(
      (SELECT json_agg(json_build_array(id, key, title, roles, position) ORDER BY id)
         FROM review_queue),
      (SELECT json_agg(json_build_array(id, name, rank, label) ORDER BY id) FROM risk_tier),
      (SELECT json_agg(json_build_array(id, key, number, title, source, sort_key) ORDER BY id)
         FROM policy_section),
      (SELECT json_agg(json_build_array(id, key, title, outcome) ORDER BY id)
         FROM response_template)
    )::text)
    """
)
# SQLite (the embedded default) has no md5: the JSON text is the fingerprint (a few kB); an
# aggregate that comes out in another order only costs a reload, never a stale answer
_SQLITE_FINGERPRINT = text(
    """
    SELECT json_array(
      (SELECT json_group_array(json_array(id, key, title, roles, position))
         FROM (SELECT * FROM review_queue ORDER BY id)),
      (SELECT json_group_array(json_array(id, name, rank, label))
         FROM (SELECT * FROM risk_tier ORDER BY id)),
      (SELECT json_group_array(json_array(id, key, number, title, source, sort_key))
         FROM (SELECT * FROM policy_section ORDER BY id)),
      (SELECT json_group_array(json_array(id, key, title, outcome))
         FROM (SELECT * FROM response_template ORDER BY id))
    )
    """
)


@dataclass(frozen=True)
class QueueInfo:
    """A queue: ``key``, ``title``, the role names that may work it, display ``position``."""

    key: str
    title: str
    roles: tuple[str, ...]
    position: int


@dataclass(frozen=True)
class TierInfo:
    """A risk tier: ``name``, ``rank`` (higher = riskier) and display ``label``."""

    name: str
    rank: int
    label: str


@dataclass(frozen=True)
class ReferenceData:
    """One consistent read of the reference tables.

    Attributes:
        fingerprint: the database's fingerprint of these rows (opaque text).
        queues: every queue in display order (position, then key).
        tiers: every tier by rank, lowest first.
        sections: (key, number, title) of every policy section in policy order.
        templates: (key, title, outcome) of every response template by outcome, then title.
    """

    fingerprint: str
    queues: tuple[QueueInfo, ...]
    tiers: tuple[TierInfo, ...]
    sections: tuple[tuple[str, str, str], ...]
    templates: tuple[tuple[str, str, str], ...]

    def queues_for_role(self, role: str) -> list[QueueInfo]:
        """Queues ``role`` (a role name) may work, in display order."""
        return [q for q in self.queues if role in q.roles]


def _fingerprint(session: Session) -> str:
    bind = session.get_bind()
    query = _PG_FINGERPRINT if bind.dialect.name == "postgresql" else _SQLITE_FINGERPRINT
    return str(session.execute(query).scalar_one())


def _load(session: Session, fingerprint: str) -> ReferenceData:
    from reviewapp.policies.services import SECTION_ORDER

    queues = tuple(
        QueueInfo(key, title, tuple(str(r) for r in roles or ()), position)
        for key, title, roles, position in session.execute(
            select(Queue.key, Queue.title, Queue.roles, Queue.position).order_by(
                Queue.position, Queue.key
            )
        )
    )
    tiers = tuple(
        TierInfo(name, rank, label)
        for name, rank, label in session.execute(
            select(RiskTier.name, RiskTier.rank, RiskTier.label).order_by(RiskTier.rank)
        )
    )
    sections = tuple(
        (key, number, title)
        for key, number, title in session.execute(
            select(PolicySection.key, PolicySection.number, PolicySection.title).order_by(
                *SECTION_ORDER
            )
        )
    )
    templates = tuple(
        (key, title, outcome)
        for key, title, outcome in session.execute(
            select(ResponseTemplate.key, ResponseTemplate.title, ResponseTemplate.outcome).order_by(
                ResponseTemplate.outcome, ResponseTemplate.title
            )
        )
    )
    return ReferenceData(fingerprint, queues, tiers, sections, templates)


def reference_data(session: Session) -> ReferenceData:
    """The reference tables as ``session`` sees them now: the process's cached copy when the
    database's fingerprint still matches it, else a fresh load (which is then cached).

    Pending changes of ``session`` are flushed by the fingerprint query (autoflush), so a caller
    that has just changed a queue sees its own change.
    """
    fingerprint = _fingerprint(session)
    if not has_app_context():
        return _load(session, fingerprint)
    extensions: dict[str, Any] = current_app.extensions
    cached = extensions.get(_EXTENSION_KEY)
    if cached is not None and cached.fingerprint == fingerprint:
        return cached  # type: ignore[no-any-return]
    fresh = _load(session, fingerprint)
    extensions[_EXTENSION_KEY] = fresh
    return fresh
