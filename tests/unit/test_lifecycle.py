"""The life-cycle table: every status × action × actor is allowed or refused as designed."""

from __future__ import annotations

import itertools

import pytest

from reviewapp.applications.lifecycle import (
    TRANSITIONS,
    Action,
    Actor,
    allowed_actions,
    next_status,
)
from reviewapp.applications.models import Status
from reviewapp.errors import InvalidTransition

EXPECTED = {
    ("draft", "submit", "developer"): "submitted",
    ("draft", "withdraw", "developer"): "withdrawn",
    ("submitted", "triage", "system"): "queued",
    ("submitted", "withdraw", "developer"): "withdrawn",
    ("queued", "triage", "system"): "queued",
    ("queued", "auto_approve", "system"): "approved",
    ("queued", "claim", "reviewer"): "in_review",
    ("queued", "withdraw", "developer"): "withdrawn",
    ("in_review", "claim", "reviewer"): "in_review",
    ("in_review", "release", "reviewer"): "queued",
    ("in_review", "expire_lease", "system"): "queued",
    ("in_review", "approve", "reviewer"): "approved",
    ("in_review", "request_mitigations", "reviewer"): "mitigations_requested",
    ("in_review", "reject", "reviewer"): "rejected",
    ("in_review", "withdraw", "developer"): "withdrawn",
    ("mitigations_requested", "resubmit", "developer"): "submitted",
    ("in_review", "first_approve", "reviewer"): "awaiting_second_approval",
    ("awaiting_second_approval", "claim", "reviewer"): "awaiting_second_approval",
    ("awaiting_second_approval", "release", "reviewer"): "awaiting_second_approval",
    ("awaiting_second_approval", "expire_lease", "system"): "awaiting_second_approval",
    ("awaiting_second_approval", "approve", "reviewer"): "approved",
    ("awaiting_second_approval", "reject", "reviewer"): "rejected",
    ("awaiting_second_approval", "request_mitigations", "reviewer"): "mitigations_requested",
    ("awaiting_second_approval", "withdraw", "developer"): "withdrawn",
    ("rejected", "appeal", "developer"): "appealed",
    ("in_review", "escalate", "reviewer"): "queued",
    ("in_review", "hand_back", "reviewer"): "queued",
    ("appealed", "claim", "reviewer"): "appealed",
    ("appealed", "release", "reviewer"): "appealed",
    ("appealed", "expire_lease", "system"): "appealed",
    ("appealed", "approve", "reviewer"): "approved",
    ("appealed", "first_approve", "reviewer"): "awaiting_second_approval",
    ("appealed", "reject", "reviewer"): "rejected",
    ("mitigations_requested", "withdraw", "developer"): "withdrawn",
}


@pytest.mark.parametrize(
    ("status", "action", "actor"), list(itertools.product(Status, Action, Actor))
)
def test_every_combination(status: Status, action: Action, actor: Actor) -> None:
    expected = EXPECTED.get((status.value, action.value, actor.value))
    if expected is None:
        with pytest.raises(InvalidTransition):
            next_status(status, action, actor)
    else:
        assert next_status(status, action, actor) == expected


def test_table_and_expectations_agree() -> None:
    flattened = {
        (s.value, a.value, actor.value) for (s, a), (_, who) in TRANSITIONS.items() for actor in who
    }
    assert flattened == set(EXPECTED)


def test_final_statuses_allow_nothing_to_anyone() -> None:
    for status in (Status.approved, Status.withdrawn):
        for actor in Actor:
            assert allowed_actions(status, actor) == []
    assert allowed_actions(Status.rejected, Actor.developer) == [Action.appeal]


def test_refusal_message_is_readable() -> None:
    with pytest.raises(
        InvalidTransition, match="An application that is approved cannot be withdrawn"
    ):
        next_status(Status.approved, Action.withdraw, Actor.developer)
