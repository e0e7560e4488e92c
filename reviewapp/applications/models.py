"""Applications (a request to take one use case live) and their immutable revisions."""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reviewapp.auth.models import Organization, User
from reviewapp.db import Base, utcnow


class Status(enum.StrEnum):
    """Application status (DESIGN.md §3)."""

    draft = "draft"
    submitted = "submitted"
    queued = "queued"
    in_review = "in_review"
    awaiting_second_approval = "awaiting_second_approval"
    mitigations_requested = "mitigations_requested"
    approved = "approved"
    rejected = "rejected"
    appealed = "appealed"
    withdrawn = "withdrawn"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


#: statuses whose application carries a decision
DECIDED_STATUSES = (Status.approved, Status.rejected, Status.mitigations_requested)
OPEN_STATUSES = (
    Status.draft,
    Status.submitted,
    Status.queued,
    Status.in_review,
    Status.awaiting_second_approval,
    Status.mitigations_requested,
)

#: statuses the reviewer queue shows
OPEN_FOR_REVIEW = (
    Status.queued,
    Status.in_review,
    Status.awaiting_second_approval,
    Status.appealed,
)

#: internal statuses the applying organization never sees, and what it is shown instead: a
#: first approval of a two-approval tier is not an outcome yet (README: "the developer sees only
#: the final outcome"), so the application stays "in review" for the developer
APPLICANT_STATUS: dict[Status, Status] = {Status.awaiting_second_approval: Status.in_review}

#: the statuses the applying organization may see (and filter by)
APPLICANT_STATUSES = tuple(s for s in Status if s not in APPLICANT_STATUS)


def applicant_status(status: str) -> Status:
    """The status the applying organization is shown for an application in ``status``."""
    return APPLICANT_STATUS.get(Status(status), Status(status))


def statuses_shown_as(status: str) -> tuple[Status, ...]:
    """The real statuses the applying organization sees as ``status`` (for its status filter):
    ``in_review`` -> (in_review, awaiting_second_approval); the others -> just themselves."""
    return (Status(status), *(k for k, v in APPLICANT_STATUS.items() if v == status))


REFERENCE_RE = re.compile(r"^APP-(\d{6,10})$")
MAX_ID = 2**31 - 1  # PostgreSQL integer


def _in(values: tuple[Status, ...]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Application(Base):
    """A go-live application. ``reference`` (``APP-000123``) is derived from the id."""

    __tablename__ = "application"
    __table_args__ = (
        CheckConstraint(
            "(claimed_by_id IS NULL) = (lease_expires_at IS NULL)", name="claim_has_lease"
        ),
        CheckConstraint(
            f"status NOT IN ({_in(DECIDED_STATUSES)}) OR last_decision_id IS NOT NULL",
            name="decided_has_decision",
        ),
        CheckConstraint(f"status IN ({_in(tuple(Status))})", name="status_known"),
        # The reviewer queue reads only open applications: walk them in queue order (SLA due,
        # tier desc, age) and stop after one page; count them from a narrow covering index.
        Index(
            "ix_application_open_order",
            "sla_due_at",
            text("tier_rank DESC"),
            "queued_at",
            "id",
            postgresql_where=text(f"status IN ({_in(OPEN_FOR_REVIEW)})"),
            sqlite_where=text(f"status IN ({_in(OPEN_FOR_REVIEW)})"),
        ),
        Index(
            "ix_application_open_filter",
            "queue",
            "risk_tier",
            "organization_id",
            postgresql_where=text(f"status IN ({_in(OPEN_FOR_REVIEW)})"),
            sqlite_where=text(f"status IN ({_in(OPEN_FOR_REVIEW)})"),
        ),
        Index("ix_application_org_created", "organization_id", "created_at"),
        # An application's place in its queue (API queue_position): count the waiting ones of
        # the same queue before it in queue order (SLA due, tier, age, id) from the index alone.
        Index(
            "ix_application_queue_position",
            "queue",
            "sla_due_at",
            "tier_rank",
            "queued_at",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # claim-next first offers a resubmission to the reviewer who asked for its mitigations:
        # find those few rows without walking the whole open queue
        Index(
            "ix_application_preferred_reviewer",
            "preferred_reviewer_id",
            postgresql_where=text("preferred_reviewer_id IS NOT NULL"),
            sqlite_where=text("preferred_reviewer_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id", ondelete="RESTRICT"))
    submitter_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(32), default=Status.draft)
    draft: Mapped[dict[str, Any]]  # editable content; copied into a revision on submit
    current_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("revision.id", use_alter=True, ondelete="SET NULL")
    )
    risk_tier: Mapped[str | None] = mapped_column(String(32))
    tier_rank: Mapped[int | None]  # denormalised rank of risk_tier, for the queue order index
    queue: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[list[Any]] = mapped_column(default=list)
    claimed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    lease_expires_at: Mapped[dt.datetime | None]
    queued_at: Mapped[dt.datetime | None]
    sla_due_at: Mapped[dt.datetime | None]  # None while the clock is paused
    # the business-hours SLA clock (review/sla.py): target, business seconds used in earlier
    # running periods, and since when it runs now (None: paused, waiting on the developer)
    sla_target_seconds: Mapped[int | None]
    sla_consumed_seconds: Mapped[int] = mapped_column(default=0)
    sla_running_since: Mapped[dt.datetime | None]
    # when the review leads were told that the SLA was missed (once per running period)
    sla_breach_notified_at: Mapped[dt.datetime | None]
    # a resubmission goes preferably to the reviewer who asked for the mitigations
    preferred_reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    submitted_at: Mapped[dt.datetime | None]
    last_decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("decision.id", use_alter=True, ondelete="SET NULL")
    )
    # Answer key of imported data (the inventory's own risk label). Never read by triage.
    reference_label: Mapped[str | None] = mapped_column(String(32))
    reference_tier: Mapped[str | None] = mapped_column(String(32))
    source_metadata: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    organization: Mapped[Organization] = relationship()
    submitter: Mapped[User] = relationship(foreign_keys=[submitter_id])
    claimed_by: Mapped[User | None] = relationship(foreign_keys=[claimed_by_id])
    preferred_reviewer: Mapped[User | None] = relationship(foreign_keys=[preferred_reviewer_id])
    current_revision: Mapped[Revision | None] = relationship(
        foreign_keys=[current_revision_id], post_update=True
    )
    revisions: Mapped[list[Revision]] = relationship(
        foreign_keys="Revision.application_id",
        back_populates="application",
        order_by="Revision.number",
    )

    @property
    def reference(self) -> str:
        """Public reference, e.g. ``APP-000123``."""
        return f"APP-{self.id:06d}"

    @staticmethod
    def id_from_reference(reference: str) -> int | None:
        """Parse ``APP-000123`` into 123; None when the text is not a reference."""
        match = REFERENCE_RE.match(reference.strip().upper())
        if not match or int(match.group(1)) > MAX_ID:
            return None
        return int(match.group(1))

    @property
    def title(self) -> str:
        if self.current_revision is not None and self.status != Status.draft:
            return str(self.current_revision.content.get("title") or "")
        return str(self.draft.get("title") or "")

    def is_lease_active(self, now: dt.datetime | None = None) -> bool:
        """True while a claim's lease has not expired."""
        if self.lease_expires_at is None:
            return False
        return self.lease_expires_at > (now or utcnow())

    def is_claimed_by(self, user: User, now: dt.datetime | None = None) -> bool:
        """True when ``user`` holds an unexpired lease on this application."""
        return self.claimed_by_id == user.id and self.is_lease_active(now)


class Revision(Base):
    """Immutable snapshot of the submitted content; each submit or resubmit makes one."""

    __tablename__ = "revision"
    __table_args__ = (
        UniqueConstraint("application_id", "number"),
        # Precedent search (review/precedents.py) on PostgreSQL: the English tsvector of the free
        # text, written as PostgreSQL prints it back so autogenerate compares it equal. SQLite
        # uses the FTS5 table revision_fts instead (created by the migration).
        Index(
            "ix_revision_search",
            text(
                "to_tsvector('english', (((((COALESCE(content ->> 'title', '') || ' ') "
                "|| COALESCE(content ->> 'description', '')) || ' ') "
                "|| COALESCE(content ->> 'benefits', '')) || ' ') "
                "|| COALESCE(content ->> 'safety_measures', ''))"
            ),
            postgresql_using="gin",
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    number: Mapped[int]
    content: Mapped[dict[str, Any]]
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    application: Mapped[Application] = relationship(
        foreign_keys=[application_id], back_populates="revisions"
    )
