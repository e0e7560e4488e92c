"""Ruleset versions, rules and triage results."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reviewapp.db import Base, utcnow


class RulesetStatus(enum.StrEnum):
    draft = "draft"
    published = "published"
    retired = "retired"


class RulesetVersion(Base):
    """A numbered version of the triage configuration. Exactly one is published (active)."""

    __tablename__ = "ruleset_version"
    __table_args__ = (
        Index(
            "uq_ruleset_version_one_active",
            "status",
            unique=True,
            postgresql_where=text("status = 'published'"),
            sqlite_where=text("status = 'published'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(String(16), default=RulesetStatus.draft)
    description: Mapped[str] = mapped_column(String(500), default="")
    keyword_lists: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    published_at: Mapped[dt.datetime | None]

    rules: Mapped[list[Rule]] = relationship(
        back_populates="ruleset_version", order_by="Rule.position", cascade="all, delete-orphan"
    )


class Rule(Base):
    """A rule: a condition in the rule language plus actions (see reviewapp.triage.engine)."""

    __tablename__ = "rule"
    __table_args__ = (UniqueConstraint("ruleset_version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ruleset_version_id: Mapped[int] = mapped_column(
        ForeignKey("ruleset_version.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(100))  # stable across versions
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    condition: Mapped[str] = mapped_column(Text)
    actions: Mapped[list[Any]]
    enabled: Mapped[bool] = mapped_column(default=True)
    examples: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ruleset_version: Mapped[RulesetVersion] = relationship(back_populates="rules")


class TriageResult(Base):
    """What a ruleset version decided for one revision, with every fired rule explained."""

    __tablename__ = "triage_result"
    __table_args__ = (UniqueConstraint("revision_id", "ruleset_version_id", "shadow"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(
        ForeignKey("revision.id", ondelete="CASCADE"), index=True
    )
    ruleset_version_id: Mapped[int] = mapped_column(
        ForeignKey("ruleset_version.id", ondelete="RESTRICT")
    )
    tier: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(64))
    fired: Mapped[list[Any]]  # [{key, name, actions, explanation, matches}]
    flags: Mapped[list[Any]] = mapped_column(default=list)
    required_safety_requirements: Mapped[list[Any]] = mapped_column(default=list)
    suggested_policy_sections: Mapped[list[Any]] = mapped_column(default=list)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    shadow: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    ruleset_version: Mapped[RulesetVersion] = relationship()
