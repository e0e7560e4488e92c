"""Risk tiers, queues, decisions, citations and required safety requirements."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reviewapp.auth.models import User
from reviewapp.db import Base, utcnow
from reviewapp.limits import LIMITS
from reviewapp.policies.models import PolicySectionVersion, SafetyRequirement


class RiskTier(Base):
    """An ordered risk tier with its review policy (DESIGN.md §2)."""

    __tablename__ = "risk_tier"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    rank: Mapped[int] = mapped_column(unique=True)  # higher = riskier
    label: Mapped[str] = mapped_column(String(LIMITS["tier.label"]))
    description: Mapped[str] = mapped_column(Text, default="")
    sla_hours: Mapped[int]  # review target, hours from entering the queue
    approvals_required: Mapped[int] = mapped_column(default=1)
    default_queue: Mapped[str] = mapped_column(String(64))
    # low-risk fast track: approve without a reviewer, except a QA sample (share 0..1) that goes
    # to the qa-sample queue for a person to decide
    auto_approve: Mapped[bool] = mapped_column(default=False)
    qa_sample_rate: Mapped[float] = mapped_column(default=0.0)


class Queue(Base):
    """A named work list and the roles that may work it."""

    __tablename__ = "review_queue"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(LIMITS["queue.title"]))
    description: Mapped[str] = mapped_column(Text, default="")
    roles: Mapped[list[Any]]  # role names that may claim from it
    position: Mapped[int] = mapped_column(default=0)


class Outcome(enum.StrEnum):
    approve = "approve"
    request_mitigations = "request_mitigations"
    reject = "reject"

    @property
    def label(self) -> str:
        return {
            "approve": "Approve",
            "request_mitigations": "Request mitigations",
            "reject": "Reject",
        }[self.value]

    @property
    def past_label(self) -> str:
        """How the outcome reads once decided (e-mail subjects, confirmations)."""
        return {
            "approve": "Approved",
            "request_mitigations": "Mitigations requested",
            "reject": "Rejected",
        }[self.value]


class Decision(Base):
    """A reviewer's decision on one revision, with citations and the message sent."""

    __tablename__ = "decision"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('approve', 'request_mitigations', 'reject')", name="outcome_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application.id", ondelete="CASCADE"), index=True
    )
    revision_id: Mapped[int] = mapped_column(ForeignKey("revision.id", ondelete="RESTRICT"))
    outcome: Mapped[str] = mapped_column(String(32))
    # None for an automatic decision (a tier's auto-approval)
    reviewer_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="RESTRICT")
    )
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("response_template.id", ondelete="SET NULL")
    )
    message: Mapped[str] = mapped_column(Text)
    rationale: Mapped[str] = mapped_column(Text, default="")
    approval_step: Mapped[int] = mapped_column(default=1)
    # False for a first approval that waits for a second person; the developer never sees it
    final: Mapped[bool] = mapped_column(default=True)
    decided_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    reviewer: Mapped[User | None] = relationship()
    citations: Mapped[list[Citation]] = relationship(
        back_populates="decision", cascade="all, delete-orphan"
    )
    required_safety_requirements: Mapped[list[RequiredSafetyRequirement]] = relationship(
        back_populates="decision", cascade="all, delete-orphan"
    )


class Citation(Base):
    """A decision's reference to one pinned policy section version."""

    __tablename__ = "citation"
    __table_args__ = (UniqueConstraint("decision_id", "policy_section_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decision.id", ondelete="CASCADE"))
    policy_section_version_id: Mapped[int] = mapped_column(
        ForeignKey("policy_section_version.id", ondelete="RESTRICT")
    )

    decision: Mapped[Decision] = relationship(back_populates="citations")
    policy_section_version: Mapped[PolicySectionVersion] = relationship()


class RequiredSafetyRequirement(Base):
    """A safety requirement a decision asks for, with the developer's later answer."""

    __tablename__ = "required_safety_requirement"
    __table_args__ = (UniqueConstraint("decision_id", "safety_requirement_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decision.id", ondelete="CASCADE"))
    safety_requirement_id: Mapped[int] = mapped_column(
        ForeignKey("safety_requirement.id", ondelete="RESTRICT")
    )
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    # the developer's answer: {"attested": true, "details": str, "link": str, "answered_by": id,
    # "answered_at": ISO UTC}; None until answered
    answer: Mapped[dict[str, Any] | None]

    decision: Mapped[Decision] = relationship(back_populates="required_safety_requirements")
    safety_requirement: Mapped[SafetyRequirement] = relationship()


class Note(Base):
    """An internal note on an application: reviewers only, append-only (never edited)."""

    __tablename__ = "note"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship()


class Appeal(Base):
    """A developer's appeal against a rejection: once per revision, decided (upheld or
    overturned) by someone other than the reviewer who made the appealed decision."""

    __tablename__ = "appeal"
    __table_args__ = (
        UniqueConstraint("application_id", "revision_id"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('upheld', 'overturned')", name="outcome_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application.id", ondelete="CASCADE"), index=True
    )
    revision_id: Mapped[int] = mapped_column(ForeignKey("revision.id", ondelete="CASCADE"))
    decision_id: Mapped[int] = mapped_column(ForeignKey("decision.id", ondelete="RESTRICT"))
    statement: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str | None] = mapped_column(String(16))
    resolution_id: Mapped[int | None] = mapped_column(
        ForeignKey("decision.id", ondelete="SET NULL")
    )  # the decision that closed the appeal (its message and citations)
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    decided_at: Mapped[dt.datetime | None]

    decision: Mapped[Decision] = relationship(foreign_keys=[decision_id])
    resolution: Mapped[Decision | None] = relationship(foreign_keys=[resolution_id])
