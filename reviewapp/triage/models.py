"""Ruleset versions, rules and triage results."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reviewapp.db import Base, utcnow
from reviewapp.limits import LIMITS


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
    description: Mapped[str] = mapped_column(String(LIMITS["ruleset.description"]), default="")
    keyword_lists: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    published_at: Mapped[dt.datetime | None]  # the first publish; a rollback keeps it
    # the latest rollback that made this version active again (None: never rolled back to)
    reactivated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    reactivated_at: Mapped[dt.datetime | None]
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("ruleset_version.id", ondelete="SET NULL")
    )  # the version this draft was started from
    # Four eyes: a second admin approves the exact content (hash) before anyone else publishes.
    approved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    approved_at: Mapped[dt.datetime | None]
    approved_hash: Mapped[str | None] = mapped_column(String(64))
    shadow: Mapped[bool] = mapped_column(default=False)  # a draft evaluated on new submissions
    lock_version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": lock_version}

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
    key: Mapped[str] = mapped_column(String(LIMITS["rule.key"]))  # stable across versions
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(LIMITS["rule.name"]))
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


class BacktestStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class Backtest(Base):
    """A run of a draft ruleset over past revisions, compared with the active ruleset.

    ``processed`` grows as chunks finish (several RQ workers share the work); ``result`` holds
    the aggregated figures once every chunk is done.
    """

    __tablename__ = "backtest"

    id: Mapped[int] = mapped_column(primary_key=True)
    ruleset_version_id: Mapped[int] = mapped_column(
        ForeignKey("ruleset_version.id", ondelete="CASCADE"), index=True
    )
    baseline_version_id: Mapped[int] = mapped_column(
        ForeignKey("ruleset_version.id", ondelete="RESTRICT")
    )
    content_hash: Mapped[str] = mapped_column(String(64))  # of the draft when it ran
    status: Mapped[str] = mapped_column(String(16), default=BacktestStatus.queued)
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    chunks_total: Mapped[int] = mapped_column(default=0)
    chunks_done: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # last sign of life of a chunk job (set when a chunk starts and when it finishes); `flask
    # sweep` fails a queued/running backtest silent for BACKTEST_STALL_SECONDS (worker died)
    heartbeat_at: Mapped[dt.datetime | None]

    ruleset_version: Mapped[RulesetVersion] = relationship(foreign_keys=[ruleset_version_id])
    baseline_version: Mapped[RulesetVersion] = relationship(foreign_keys=[baseline_version_id])


class BacktestItem(Base):
    """One revision's outcome in a backtest (aggregated with GROUP BY when the run ends)."""

    __tablename__ = "backtest_item"
    __table_args__ = (UniqueConstraint("backtest_id", "revision_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    backtest_id: Mapped[int] = mapped_column(ForeignKey("backtest.id", ondelete="CASCADE"))
    revision_id: Mapped[int] = mapped_column(ForeignKey("revision.id", ondelete="CASCADE"))
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    baseline_tier: Mapped[str] = mapped_column(String(32))
    new_tier: Mapped[str] = mapped_column(String(32))
    reference_tier: Mapped[str | None] = mapped_column(String(32))
    decision_outcome: Mapped[str | None] = mapped_column(String(32))
    errors: Mapped[int] = mapped_column(default=0)
