"""Bulk decisions: approve or reject several applications with one template and citation.

Each item is claimed (unless the reviewer already holds it) and decided through the normal
:func:`reviewapp.review.services.decide` in its own savepoint, so every rule (conflict of
interest, two-person approval, citations, stale data) applies per item, each item is audited on
its own, and one failing item never undoes or blocks the others.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from reviewapp.applications.models import Application, Status
from reviewapp.applications.services import applicant_recipients, get_application
from reviewapp.audit.services import record_event
from reviewapp.auth.models import Permission, User
from reviewapp.errors import DomainError, PermissionDenied, ValidationFailed
from reviewapp.review.services import DecisionInput, claim, decide

BULK_LIMIT = 100  # applications per bulk action
BULK_OUTCOMES = ("approve", "reject")


@dataclass
class BulkItemResult:
    """What happened to one selected application: ``ok`` and a sentence saying what or why."""

    reference: str
    ok: bool
    message: str


def _notified(application: Application) -> str:
    """Who the decision email goes to (what ``notify_decision`` queued), as a sentence."""
    recipients = applicant_recipients(application)
    if not recipients:
        return "nobody to notify (no active developer account)."
    shown = ", ".join(recipients[:3])
    more = f" and {len(recipients) - 3} more" if len(recipients) > 3 else ""
    return f"notified {shown}{more}."


def bulk_decide(
    session: Session, user: User, references: list[str], data: DecisionInput
) -> list[BulkItemResult]:
    """Decide each referenced application with the same outcome, template and citations.

    Args:
        references: application references (duplicates are ignored), at most BULK_LIMIT.
        data: the shared decision (outcome approve or reject; no safety requirements).

    Returns:
        One result per distinct reference, in the order given.

    Raises:
        PermissionDenied (not a reviewer), ValidationFailed (nothing selected, too many, or an
        outcome other than approve/reject).
    """
    if not user.can(Permission.decide):
        raise PermissionDenied("Only reviewers decide.")
    refs = list(dict.fromkeys(r.strip() for r in references if r and r.strip()))
    if not refs:
        raise ValidationFailed(
            "Select at least one application.", fields={"references": "none selected"}
        )
    if len(refs) > BULK_LIMIT:
        raise ValidationFailed(
            f"Select at most {BULK_LIMIT} applications at once (you selected {len(refs)}).",
            fields={"references": "too many"},
        )
    if data.outcome not in BULK_OUTCOMES:
        raise ValidationFailed(
            "Bulk actions approve or reject; request mitigations one application at a time.",
            fields={"outcome": "approve or reject"},
        )
    results = []
    for reference in refs:
        item = replace(data, safety_requirements=[], requirements={}, expected_version=None)
        savepoint = session.begin_nested()
        try:
            application = get_application(session, user, reference)
            if not application.is_claimed_by(user):
                claim(session, user, application)
            decision = decide(session, user, application, item)
            savepoint.commit()
        except (DomainError, StaleDataError) as exc:
            savepoint.rollback()
            why = exc.message if isinstance(exc, DomainError) else "someone else changed it"
            if isinstance(exc, ValidationFailed) and exc.fields:
                why += " " + " ".join(exc.fields.values())
            results.append(BulkItemResult(reference, False, why))
            continue
        if decision.final:
            done = {"approve": "Approved", "reject": "Rejected"}[data.outcome]
            if application.status == Status.approved and decision.approval_step == 2:
                done = "Approved (second approval)"
            results.append(BulkItemResult(reference, True, f"{done}; {_notified(application)}"))
        else:
            results.append(
                BulkItemResult(
                    reference,
                    True,
                    "First approval recorded; its tier needs a second approval by a senior reviewer.",
                )
            )
    record_event(
        session,
        actor=user,
        action="decision.bulk",
        subject_type="bulk",
        subject_id=f"{len(refs)} applications",
        after={
            "outcome": data.outcome,
            "template": data.template_key,
            "citations": list(data.citations),
            "succeeded": [r.reference for r in results if r.ok],
            "failed": {r.reference: r.message for r in results if not r.ok},
        },
    )
    return results
