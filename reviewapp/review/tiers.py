"""Risk tiers by name, looked up once per transaction.

A submission asks for its tier several times (triage for the SLA target, fast track for
``auto_approve``); the rows are a handful and change only through the admin pages. The lookup
keeps the session's own tier objects in ``session.info`` for the rest of the transaction:
the same instances a query would return from the session's identity map, so an edit made in
the same session is seen. The cache is dropped when the transaction ends (commit or rollback)
and when the session flushes a tier it added, changed or deleted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from reviewapp.review.models import RiskTier

_INFO_KEY = "reviewapp_risk_tiers"


def tier_named(session: Session, name: str | None) -> RiskTier | None:
    """The risk tier called ``name`` (None for an unknown name or None).

    Loads every tier in one statement at the first call of a transaction; later calls in the
    same transaction run no SQL.
    """
    tiers: dict[str, RiskTier] | None = session.info.get(_INFO_KEY)
    if tiers is None:
        tiers = {t.name: t for t in session.scalars(select(RiskTier))}
        session.info[_INFO_KEY] = tiers
    return tiers.get(name) if name is not None else None


def _forget(session: Session, *_: Any) -> None:
    session.info.pop(_INFO_KEY, None)


def _forget_if_tiers_changed(session: Session, *_: Any) -> None:
    # runs before every flush: look at the pending objects only when tiers are cached
    if _INFO_KEY in session.info and any(
        isinstance(o, RiskTier) for o in (*session.new, *session.dirty, *session.deleted)
    ):
        _forget(session)


event.listen(Session, "after_commit", _forget)
event.listen(Session, "after_rollback", _forget)
event.listen(Session, "after_soft_rollback", _forget)
event.listen(Session, "before_flush", _forget_if_tiers_changed)


def tier_policy_problems(
    tier: RiskTier, others: list[RiskTier], approvals_required: int, auto_approve: bool
) -> dict[str, str]:
    """What is wrong with giving ``tier`` these approvals and fast-track settings, given the
    ``others`` tiers as stored ({form field: message}; empty when nothing is).

    Rules (so that no single admin setting lets risky work through with less scrutiny than
    milder work): a riskier tier never needs fewer approvals than a less risky one; a tier
    that needs two approvals is never approved automatically; nor is the riskiest tier (the
    prohibited-use tier by default), whatever its approvals.
    """
    problems: dict[str, str] = {}
    milder_stricter = [
        t for t in others if t.rank < tier.rank and t.approvals_required > approvals_required
    ]
    riskier_laxer = [
        t for t in others if t.rank > tier.rank and t.approvals_required < approvals_required
    ]
    if milder_stricter:
        other = milder_stricter[0]
        problems["approvals_required"] = (
            f"A riskier tier cannot need fewer approvals than a less risky one: {other.label} "
            f"needs {other.approvals_required}."
        )
    elif riskier_laxer:
        other = riskier_laxer[0]
        problems["approvals_required"] = (
            f"{other.label} is riskier and needs only {other.approvals_required}; raise it first."
        )
    if auto_approve:
        if approvals_required >= 2:
            problems["auto_approve"] = (
                "A tier that needs two approvals cannot be approved automatically."
            )
        elif all(t.rank < tier.rank for t in others):
            problems["auto_approve"] = "The riskiest tier is never approved automatically."
    return problems
