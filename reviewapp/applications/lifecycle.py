"""The application life cycle as one table: (status, action) -> (new status, who may do it).

DESIGN.md §3. Every status change in the product goes through :func:`next_status`, so the
table below is the whole truth about which transitions exist.
"""

from __future__ import annotations

import enum

from reviewapp.applications.models import Status, applicant_status
from reviewapp.errors import InvalidTransition


class Action(enum.StrEnum):
    submit = "submit"
    triage = "triage"
    claim = "claim"
    release = "release"
    expire_lease = "expire_lease"
    approve = "approve"
    first_approve = "first_approve"
    request_mitigations = "request_mitigations"
    reject = "reject"
    resubmit = "resubmit"
    withdraw = "withdraw"
    appeal = "appeal"
    escalate = "escalate"
    hand_back = "hand_back"
    auto_approve = "auto_approve"


class Actor(enum.StrEnum):
    """Who performs an action: the applicant's side, the review team, or the system itself."""

    developer = "developer"
    reviewer = "reviewer"
    system = "system"


S = Status
A = Action
DEV = frozenset({Actor.developer})
REV = frozenset({Actor.reviewer})
SYS = frozenset({Actor.system})

TRANSITIONS: dict[tuple[Status, Action], tuple[Status, frozenset[Actor]]] = {
    (S.draft, A.submit): (S.submitted, DEV),
    (S.submitted, A.triage): (S.queued, SYS),
    (S.queued, A.triage): (S.queued, SYS),  # re-triage of an unclaimed application
    (S.queued, A.auto_approve): (S.approved, SYS),  # a tier's fast track (not the QA sample)
    (S.queued, A.claim): (S.in_review, REV),
    (S.in_review, A.claim): (S.in_review, REV),  # taking over an expired lease
    (S.in_review, A.release): (S.queued, REV),
    (S.in_review, A.escalate): (S.queued, REV),  # to the escalations queue, with a reason
    (S.in_review, A.hand_back): (S.queued, REV),  # a senior returns it to its tier's queue
    (S.in_review, A.expire_lease): (S.queued, SYS),
    (S.in_review, A.approve): (S.approved, REV),
    # tiers that need two approvals (DESIGN.md §3): a first approval waits for a second person,
    # who approves, or decides otherwise (reject / request mitigations) instead
    (S.in_review, A.first_approve): (S.awaiting_second_approval, REV),
    (S.awaiting_second_approval, A.claim): (S.awaiting_second_approval, REV),
    (S.awaiting_second_approval, A.release): (S.awaiting_second_approval, REV),
    (S.awaiting_second_approval, A.expire_lease): (S.awaiting_second_approval, SYS),
    (S.awaiting_second_approval, A.approve): (S.approved, REV),
    (S.awaiting_second_approval, A.reject): (S.rejected, REV),
    (S.awaiting_second_approval, A.request_mitigations): (S.mitigations_requested, REV),
    (S.awaiting_second_approval, A.withdraw): (S.withdrawn, DEV),
    # appeals: the developer contests a rejection; someone other than the original reviewer
    # upholds it (reject) or overturns it (approve)
    (S.rejected, A.appeal): (S.appealed, DEV),
    (S.appealed, A.claim): (S.appealed, REV),
    (S.appealed, A.release): (S.appealed, REV),
    (S.appealed, A.expire_lease): (S.appealed, SYS),
    (S.appealed, A.approve): (S.approved, REV),
    # overturning on a tier that needs two approvals: a second senior completes it
    (S.appealed, A.first_approve): (S.awaiting_second_approval, REV),
    (S.appealed, A.reject): (S.rejected, REV),
    (S.in_review, A.request_mitigations): (S.mitigations_requested, REV),
    (S.in_review, A.reject): (S.rejected, REV),
    (S.mitigations_requested, A.resubmit): (S.submitted, DEV),
    (S.draft, A.withdraw): (S.withdrawn, DEV),
    (S.submitted, A.withdraw): (S.withdrawn, DEV),
    (S.queued, A.withdraw): (S.withdrawn, DEV),
    (S.in_review, A.withdraw): (S.withdrawn, DEV),
    (S.mitigations_requested, A.withdraw): (S.withdrawn, DEV),
}


def next_status(status: str, action: Action, actor: Actor) -> Status:
    """The status after ``action`` by ``actor`` on an application in ``status``.

    Raises:
        InvalidTransition: when the table has no such transition or the actor may not do it.
    """
    entry = TRANSITIONS.get((Status(status), action))
    if entry is None:
        # a developer is told the status they are shown, never an internal one
        shown = applicant_status(status) if actor == Actor.developer else Status(status)
        raise InvalidTransition(
            f"An application that is {shown.label.lower()} cannot be {_past(action)}."
        )
    new_status, allowed = entry
    if actor not in allowed:
        raise InvalidTransition(
            f"Only {' or '.join(sorted(allowed))} may {action.value.replace('_', ' ')} here."
        )
    return new_status


def allowed_actions(status: str, actor: Actor) -> list[Action]:
    """Actions ``actor`` may take on an application in ``status``, in table order."""
    return [a for (s, a), (_, who) in TRANSITIONS.items() if s == status and actor in who]


def _past(action: Action) -> str:
    return {
        A.submit: "submitted",
        A.triage: "triaged",
        A.claim: "claimed",
        A.release: "released",
        A.expire_lease: "returned to the queue",
        A.approve: "approved",
        A.first_approve: "given a first approval",
        A.request_mitigations: "sent back for mitigations",
        A.reject: "rejected",
        A.resubmit: "resubmitted",
        A.withdraw: "withdrawn",
        A.appeal: "appealed",
        A.escalate: "escalated",
        A.hand_back: "handed back",
        A.auto_approve: "approved automatically",
    }[action]
