"""Metrics for the admin dashboard: pure query functions returning plain dicts.

Every function takes the session, a :class:`Period` (inclusive UTC dates) and an optional tier
name, and returns a list of dicts whose keys are the CSV columns. The SQL is portable
(PostgreSQL and SQLite): days, percentiles and buckets are computed in Python from the rows,
because date truncation and percentile functions differ between the two.

Definitions (shown on the dashboard too):

* intake: applications whose ``submitted_at`` falls on the day (UTC), by risk tier;
* queue depth and age: a snapshot at ``now`` of applications open for review (queued, in review,
  awaiting second approval, appealed), by queue, and their age since ``queued_at``;
* SLA attainment: applications whose last final decision falls in the period and that have an
  SLA target. The due time is cleared when the clock stops, so attainment is read from the
  business-hours clock: attained when ``sla_consumed_seconds <= sla_target_seconds``;
* time to decision: calendar hours from the decided revision's ``submitted_at`` to the final
  decision (appeal resolutions excluded; automatic approvals included), median and p90;
* decision mix: final decisions in the period by outcome, human and automatic;
* reviewer throughput: every decision a person made in the period (first approvals and appeal
  resolutions included: they are work);
* QA agreement: applications in the ``qa-sample`` queue whose last final decision, made by a
  person in the period, approved them (the fast track would have approved them all);
* appeal overturn rate: appeals decided in the period, per policy section cited by the
  appealed decision (an appeal counts once for every section that decision cited);
* most cited sections: citations of final decisions in the period, per section;
* policy feedback: reviewers' feedback created in the period, per section and kind.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session, aliased

from reviewapp.applications.models import OPEN_FOR_REVIEW, Application, Revision
from reviewapp.auth.models import User
from reviewapp.policies.models import PolicyFeedback, PolicySection, PolicySectionVersion
from reviewapp.review.fast_track import QA_QUEUE
from reviewapp.review.models import Appeal, Citation, Decision, Outcome, RiskTier

_S = TypeVar("_S", bound=Select)  # type: ignore[type-arg]
UNTRIAGED = "untriaged"  # intake rows of applications not (yet) given a tier
Row = dict[str, Any]

#: queue age buckets: (label, upper bound in hours, exclusive; None = no bound)
AGE_BUCKETS: tuple[tuple[str, float | None], ...] = (
    ("under 1 day", 24),
    ("1-3 days", 72),
    ("3-7 days", 168),
    ("7-14 days", 336),
    ("14 days or more", None),
)


@dataclass(frozen=True)
class Period:
    """An inclusive range of UTC dates, ``start`` to ``end``."""

    start: dt.date
    end: dt.date

    @property
    def lower(self) -> dt.datetime:
        """First instant of the period (UTC)."""
        return dt.datetime.combine(self.start, dt.time.min, dt.UTC)

    @property
    def upper(self) -> dt.datetime:
        """First instant after the period (UTC), exclusive."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min, dt.UTC)

    def days(self) -> list[dt.date]:
        """Every date of the period, in order."""
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def tier_names(session: Session) -> list[str]:
    """Tier names in rank order (lowest risk first)."""
    return list(session.scalars(select(RiskTier.name).order_by(RiskTier.rank)))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _rate(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to 4 places; None when there is nothing to divide."""
    return round(part / whole, 4) if whole else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or
    below it (``share`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _tier_filter(statement: _S, tier: str | None) -> _S:
    return statement.where(Application.risk_tier == tier) if tier else statement


def _final_in(period: Period) -> Any:
    return and_(
        Decision.final.is_(True),
        Decision.decided_at >= period.lower,
        Decision.decided_at < period.upper,
    )


def intake_per_day(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """Submitted applications per UTC day and tier.

    Returns:
        ``{"day": date, "tier": str, "applications": int}`` for every day of the period and
        every tier (the chosen one, or all tiers plus "untriaged" when any are), zeros included.
    """
    statement = _tier_filter(
        select(Application.submitted_at, Application.risk_tier).where(
            Application.submitted_at >= period.lower, Application.submitted_at < period.upper
        ),
        tier,
    )
    counts: Counter[tuple[dt.date, str]] = Counter()
    for submitted_at, risk_tier in session.execute(statement):
        if submitted_at is None:  # excluded by the WHERE clause; narrows the type
            continue
        counts[(_utc(submitted_at).date(), risk_tier or UNTRIAGED)] += 1
    tiers = [tier] if tier else tier_names(session)
    if not tier and any(t == UNTRIAGED for _, t in counts):
        tiers.append(UNTRIAGED)
    return [
        {"day": day, "tier": t, "applications": counts[(day, t)]}
        for day in period.days()
        for t in tiers
    ]


def queue_depth(session: Session, now: dt.datetime, tier: str | None = None) -> list[Row]:
    """Applications open for review at ``now``, per queue (a snapshot: the period is ignored).

    Returns:
        ``{"queue": str, "applications": int, "oldest_hours": float}`` sorted by queue.
    """
    statement = _tier_filter(
        select(Application.queue, Application.queued_at).where(
            Application.status.in_(OPEN_FOR_REVIEW)
        ),
        tier,
    )
    ages: dict[str, list[float]] = defaultdict(list)
    for queue, queued_at in session.execute(statement):
        hours = (now - _utc(queued_at)).total_seconds() / 3600 if queued_at else 0.0
        ages[queue or "(none)"].append(hours)
    return [
        {"queue": q, "applications": len(v), "oldest_hours": round(max(v), 1)}
        for q, v in sorted(ages.items())
    ]


def queue_age(session: Session, now: dt.datetime, tier: str | None = None) -> list[Row]:
    """Age distribution (since ``queued_at``) of applications open for review at ``now``.

    Returns:
        ``{"age": label, "applications": int}`` for every bucket of :data:`AGE_BUCKETS`.
    """
    statement = _tier_filter(
        select(Application.queued_at).where(
            Application.status.in_(OPEN_FOR_REVIEW), Application.queued_at.is_not(None)
        ),
        tier,
    )
    counts: Counter[str] = Counter()
    for queued_at in session.scalars(statement):
        if queued_at is None:  # excluded by the WHERE clause; narrows the type
            continue
        hours = (now - _utc(queued_at)).total_seconds() / 3600
        for label, bound in AGE_BUCKETS:
            if bound is None or hours < bound:
                counts[label] += 1
                break
    return [{"age": label, "applications": counts[label]} for label, _ in AGE_BUCKETS]


def _last_final_decisions(period: Period, tier: str | None) -> Any:
    """Applications joined to their last final decision, decided in the period."""
    return _tier_filter(
        select(Application, Decision)
        .join(Decision, Decision.id == Application.last_decision_id)
        .where(_final_in(period)),
        tier,
    )


def sla_attainment(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """SLA attainment per tier of applications decided in the period.

    Attained: ``sla_consumed_seconds <= sla_target_seconds`` (business seconds used vs target;
    the due time itself is cleared when the clock stops). Applications without a target are
    left out.

    Returns:
        ``{"tier", "decided", "attained", "attainment"}``; attainment is a share 0..1.
    """
    statement = _last_final_decisions(period, tier).where(
        Application.sla_target_seconds.is_not(None)
    )
    decided: Counter[str] = Counter()
    attained: Counter[str] = Counter()
    for application, _decision in session.execute(statement):
        name = application.risk_tier or UNTRIAGED
        decided[name] += 1
        if (application.sla_consumed_seconds or 0) <= application.sla_target_seconds:
            attained[name] += 1
    return [
        {
            "tier": t,
            "decided": decided[t],
            "attained": attained[t],
            "attainment": _rate(attained[t], decided[t]),
        }
        for t in _ordered_tiers(session, decided, tier)
    ]


def _ordered_tiers(session: Session, seen: Counter[str], tier: str | None) -> list[str]:
    if tier:
        return [tier]
    names = tier_names(session)
    return names + sorted(set(seen) - set(names))


def _appeal_resolutions() -> Any:
    return select(Appeal.resolution_id).where(Appeal.resolution_id.is_not(None))


def time_to_decision(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """Hours from a revision's submission to its final decision, per tier.

    Appeal resolutions are left out (they answer an appeal, not a submission); automatic
    approvals count. Median: :func:`statistics.median`; p90: nearest rank (:func:`percentile`).

    Returns:
        ``{"tier", "decisions", "median_hours", "p90_hours"}`` (hours rounded to 0.1).
    """
    statement = _tier_filter(
        select(Application.risk_tier, Revision.submitted_at, Decision.decided_at)
        .join(Decision, Decision.application_id == Application.id)
        .join(Revision, Revision.id == Decision.revision_id)
        .where(_final_in(period), Decision.id.not_in(_appeal_resolutions())),
        tier,
    )
    hours: dict[str, list[float]] = defaultdict(list)
    for risk_tier, submitted_at, decided_at in session.execute(statement):
        elapsed = (_utc(decided_at) - _utc(submitted_at)).total_seconds() / 3600
        hours[risk_tier or UNTRIAGED].append(elapsed)
    rows = []
    for t in _ordered_tiers(session, Counter(hours), tier):
        values = hours.get(t, [])
        p90 = percentile(values, 0.9)
        rows.append(
            {
                "tier": t,
                "decisions": len(values),
                "median_hours": round(statistics.median(values), 1) if values else None,
                "p90_hours": round(p90, 1) if p90 is not None else None,
            }
        )
    return rows


def decision_mix(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """Final decisions in the period by outcome (appeal resolutions excluded).

    Returns:
        ``{"outcome", "human", "automatic", "total", "share"}`` for every outcome.
    """
    statement = _tier_filter(
        select(Decision.outcome, Decision.reviewer_id)
        .join(Application, Application.id == Decision.application_id)
        .where(_final_in(period), Decision.id.not_in(_appeal_resolutions())),
        tier,
    )
    human: Counter[str] = Counter()
    automatic: Counter[str] = Counter()
    for outcome, reviewer_id in session.execute(statement):
        (automatic if reviewer_id is None else human)[outcome] += 1
    total = sum(human.values()) + sum(automatic.values())
    return [
        {
            "outcome": o.value,
            "human": human[o.value],
            "automatic": automatic[o.value],
            "total": human[o.value] + automatic[o.value],
            "share": _rate(human[o.value] + automatic[o.value], total),
        }
        for o in Outcome
    ]


def reviewer_throughput(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """Decisions each person made in the period (final or not, appeal resolutions included).

    Returns:
        ``{"reviewer", "email", "decisions", "final_decisions"}``, busiest first, then by name.
    """
    statement = _tier_filter(
        select(User.name, User.email, Decision.final)
        .join(Decision, Decision.reviewer_id == User.id)
        .join(Application, Application.id == Decision.application_id)
        .where(Decision.decided_at >= period.lower, Decision.decided_at < period.upper),
        tier,
    )
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for name, email, final in session.execute(statement):
        counts[(name, email)][0] += 1
        counts[(name, email)][1] += 1 if final else 0
    rows = [
        {"reviewer": name, "email": email, "decisions": n, "final_decisions": f}
        for (name, email), (n, f) in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r["decisions"], r["reviewer"], r["email"]))


def qa_agreement(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """Agreement between people and the fast track on the QA sample, per tier.

    Counts applications in the ``qa-sample`` queue whose last final decision was made by a
    person in the period; agreement is the share of them approved (the fast track would have
    approved every one).

    Returns:
        ``{"tier", "decided", "approved", "agreement"}`` for tiers with decided samples.
    """
    statement = _last_final_decisions(period, tier).where(
        Application.queue == QA_QUEUE, Decision.reviewer_id.is_not(None)
    )
    decided: Counter[str] = Counter()
    approved: Counter[str] = Counter()
    for application, decision in session.execute(statement):
        name = application.risk_tier or UNTRIAGED
        decided[name] += 1
        approved[name] += decision.outcome == Outcome.approve.value
    return [
        {
            "tier": t,
            "decided": decided[t],
            "approved": approved[t],
            "agreement": _rate(approved[t], decided[t]),
        }
        for t in _ordered_tiers(session, decided, None)
        if decided[t] or t == tier
    ]


def _section_label(number: str, title: str) -> str:
    return f"{number} {title}".strip()


def appeal_overturns(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """Appeals decided in the period per policy section cited by the appealed decision.

    Returns:
        ``{"section_key", "section", "appeals", "overturned", "overturn_rate"}``, most appealed
        first. An appeal against a decision citing no section is not counted.
    """
    statement = _tier_filter(
        select(PolicySection.key, PolicySection.number, PolicySection.title, Appeal.outcome)
        .join(Application, Application.id == Appeal.application_id)
        .join(Citation, Citation.decision_id == Appeal.decision_id)
        .join(PolicySectionVersion, PolicySectionVersion.id == Citation.policy_section_version_id)
        .join(PolicySection, PolicySection.id == PolicySectionVersion.section_id)
        .where(
            Appeal.outcome.is_not(None),
            Appeal.decided_at >= period.lower,
            Appeal.decided_at < period.upper,
        ),
        tier,
    )
    appeals: Counter[str] = Counter()
    overturned: Counter[str] = Counter()
    labels: dict[str, str] = {}
    for key, number, title, outcome in session.execute(statement):
        labels[key] = _section_label(number, title)
        appeals[key] += 1
        overturned[key] += outcome == "overturned"
    rows = [
        {
            "section_key": k,
            "section": labels[k],
            "appeals": appeals[k],
            "overturned": overturned[k],
            "overturn_rate": _rate(overturned[k], appeals[k]),
        }
        for k in appeals
    ]
    return sorted(rows, key=lambda r: (-r["appeals"], r["section_key"]))


def cited_sections(
    session: Session, period: Period, tier: str | None = None, limit: int = 15
) -> list[Row]:
    """The ``limit`` sections most cited by final decisions in the period.

    Returns:
        ``{"section_key", "section", "citations"}``, most cited first, then by key.
    """
    statement = _tier_filter(
        select(PolicySection.key, PolicySection.number, PolicySection.title)
        .select_from(Citation)
        .join(Decision, Decision.id == Citation.decision_id)
        .join(Application, Application.id == Decision.application_id)
        .join(PolicySectionVersion, PolicySectionVersion.id == Citation.policy_section_version_id)
        .join(PolicySection, PolicySection.id == PolicySectionVersion.section_id)
        .where(_final_in(period)),
        tier,
    )
    counts: Counter[str] = Counter()
    labels: dict[str, str] = {}
    for key, number, title in session.execute(statement):
        labels[key] = _section_label(number, title)
        counts[key] += 1
    ordered = sorted(counts, key=lambda k: (-counts[k], k))[:limit]
    return [{"section_key": k, "section": labels[k], "citations": counts[k]} for k in ordered]


def policy_feedback(session: Session, period: Period, tier: str | None = None) -> list[Row]:
    """Reviewers' policy feedback created in the period, per section and kind.

    With a tier, only feedback tied to an application of that tier counts.

    Returns:
        ``{"section_key", "section", "edge_case", "unclear", "total"}``, most flagged first.
    """
    feedback_app = aliased(Application)
    statement = (
        select(PolicySection.key, PolicySection.number, PolicySection.title, PolicyFeedback.kind)
        .join(PolicySection, PolicySection.id == PolicyFeedback.policy_section_id)
        .where(PolicyFeedback.created_at >= period.lower, PolicyFeedback.created_at < period.upper)
    )
    if tier:
        statement = statement.join(
            feedback_app, feedback_app.id == PolicyFeedback.application_id
        ).where(feedback_app.risk_tier == tier)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    labels: dict[str, str] = {}
    for key, number, title, kind in session.execute(statement):
        labels[key] = _section_label(number, title)
        counts[key][kind] += 1
    rows = [
        {
            "section_key": k,
            "section": labels[k],
            "edge_case": c["edge_case"],
            "unclear": c["unclear"],
            "total": c["edge_case"] + c["unclear"],
        }
        for k, c in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r["total"], r["section_key"]))
