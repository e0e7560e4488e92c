"""Policy sections (versioned), safety requirements and response templates."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reviewapp.db import Base, utcnow
from reviewapp.limits import LIMITS


class PolicySection(Base):
    """A numbered clause of the usage policy. Its text lives in immutable versions."""

    __tablename__ = "policy_section"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(
        String(LIMITS["policy_section.key"]), unique=True
    )  # stable id, e.g. "usage-3.2"
    number: Mapped[str] = mapped_column(
        String(LIMITS["policy_section.number"])
    )  # as displayed, e.g. "§3.2" or "Art. 5(1)(a)"
    title: Mapped[str] = mapped_column(String(LIMITS["policy_section.title"]))
    source: Mapped[str] = mapped_column(String(100), default="reviewapp")
    review_use: Mapped[str] = mapped_column(String(30), default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    sort_key: Mapped[str] = mapped_column(String(100), default="")

    versions: Mapped[list[PolicySectionVersion]] = relationship(
        back_populates="section", order_by="PolicySectionVersion.version"
    )

    @property
    def source_url(self) -> str:
        """``url`` when it is an http(s) address, else "" (never a ``javascript:`` link, even
        one stored before imports checked it)."""
        from reviewapp.policies.services import is_web_url

        return self.url if is_web_url(self.url) else ""

    def in_force_on(self, day: dt.date) -> PolicySectionVersion | None:
        """The version in force on ``day``: the newest whose effective date has come, or None
        when every version takes effect later."""
        for version in reversed(self.versions):
            if version.effective_date <= day:
                return version
        return None

    @property
    def current(self) -> PolicySectionVersion | None:
        """The version in force today (UTC): what decisions cite and the public page shows.
        None when the section's first version is not in force yet."""
        return self.in_force_on(utc_today())

    @property
    def latest(self) -> PolicySectionVersion:
        """The newest version published, possibly not in force yet (versions are never edited,
        only added; a new one builds on this one)."""
        return self.versions[-1]

    @property
    def upcoming(self) -> list[PolicySectionVersion]:
        """Versions published to take effect after today (UTC), oldest first."""
        today = utc_today()
        return [v for v in self.versions if v.effective_date > today]


class PolicySectionVersion(Base):
    """An immutable text of a policy section. Citations point here, pinning the version."""

    __tablename__ = "policy_section_version"
    __table_args__ = (UniqueConstraint("section_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("policy_section.id", ondelete="CASCADE"))
    version: Mapped[int]
    text: Mapped[str] = mapped_column(Text)  # Markdown
    effective_date: Mapped[dt.date]
    change_summary: Mapped[str] = mapped_column(
        String(LIMITS["policy_section.change_summary"]), default=""
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    section: Mapped[PolicySection] = relationship(back_populates="versions")

    @property
    def is_upcoming(self) -> bool:
        """Published, but its effective date is after today (UTC)."""
        return self.effective_date > utc_today()


def utc_today() -> dt.date:
    """Today's date in UTC (effective dates are calendar dates)."""
    return dt.datetime.now(dt.UTC).date()


class SafetyRequirement(Base):
    """A catalogued mitigation that a decision can require (DESIGN.md §2)."""

    __tablename__ = "safety_requirement"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(LIMITS["requirement.key"]), unique=True)
    title: Mapped[str] = mapped_column(String(LIMITS["requirement.title"]))
    description: Mapped[str] = mapped_column(Text, default="")
    # parameters a reviewer sets when requiring it, e.g. [{"name": "minimum_user_age",
    # "label": "Minimum user age", "unit": "years", "min": 13, "max": 21}] (integers)
    parameters: Mapped[list[Any]] = mapped_column(default=list)


class ResponseTemplate(Base):
    """Message text sent to a developer, rendered in a Jinja sandbox with StrictUndefined."""

    __tablename__ = "response_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(LIMITS["template.key"]), unique=True)
    title: Mapped[str] = mapped_column(String(LIMITS["template.title"]))
    outcome: Mapped[str] = mapped_column(String(40))  # decision outcome it is meant for
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PolicyFeedback(Base):
    """A reviewer's flag on a policy section met while deciding: an edge case, or a clause that
    is unclear or hard to enforce. Admins read it per section."""

    __tablename__ = "policy_feedback"
    __table_args__ = (CheckConstraint("kind IN ('edge_case', 'unclear')", name="kind_known"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_section_id: Mapped[int] = mapped_column(
        ForeignKey("policy_section.id", ondelete="CASCADE"), index=True
    )
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("application.id", ondelete="SET NULL")
    )
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decision.id", ondelete="SET NULL"))
    author_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    section: Mapped[PolicySection] = relationship()
