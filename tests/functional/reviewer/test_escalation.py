"""Escalation: a reviewer hands a claimed application to senior reviewers with a reason; a
senior decides it or hands it back to its tier's queue."""

from __future__ import annotations

from sqlalchemy import select

from reviewapp.applications.models import Status
from reviewapp.review.models import Note
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def test_escalate_then_hand_back(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    original_queue = application.queue
    staff = OrganizationFactory()
    reviewer = login(UserFactory(reviewer=True, organization=staff))
    post_form(reviewer, f"/review/{application.reference}/claim", token_from="/queue")
    empty = post_form(
        reviewer,
        f"/review/{application.reference}/escalate",
        {"reason": " "},
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"Say why" in empty.data
    response = post_form(
        reviewer,
        f"/review/{application.reference}/escalate",
        {"reason": "Dual-use; needs a senior call."},
        token_from="/queue",
    )
    assert response.status_code == 302
    db.expire_all()
    assert (
        application.status == Status.queued
        and application.queue == "escalations"
        and application.claimed_by_id is None
    )
    assert db.scalars(select(Note.body).where(Note.application_id == application.id)).all() == [
        "Escalated: Dual-use; needs a senior call."
    ]
    nothing = post_form(reviewer, "/queue/claim-next", token_from="/queue", follow_redirects=True)
    assert b"Nothing to claim" in nothing.data  # escalations are for senior reviewers

    senior = login(UserFactory(senior=True, organization=staff))
    taken = post_form(senior, "/queue/claim-next", token_from="/queue")
    assert taken.location.endswith(application.reference)
    refused = post_form(
        reviewer, f"/review/{application.reference}/hand-back", {"reason": "x"}, token_from="/queue"
    )
    assert refused.status_code == 403
    post_form(
        senior,
        f"/review/{application.reference}/hand-back",
        {"reason": "Fine as standard."},
        token_from="/queue",
    )
    db.expire_all()
    assert application.status == Status.queued and application.queue == original_queue
    assert (
        db.scalars(
            select(Note.body).where(Note.application_id == application.id).order_by(Note.id)
        ).all()[-1]
        == "Handed back: Fine as standard."
    )


def test_escalating_needs_a_claim(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    response = post_form(
        client,
        f"/review/{application.reference}/escalate",
        {"reason": "why"},
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"Claim the application before escalating it." in response.data


def test_an_over_long_reason_comes_back_with_the_text_and_nothing_moves(login, db) -> None:
    """The reason's limit (LIMITS["reason.text"], in characters) is checked: one over re-renders
    the review page with the text kept and the error by the field; at the limit it is taken."""
    from reviewapp.limits import LIMITS

    limit = LIMITS["reason.text"]
    application = ApplicationFactory(submitted=True)
    original_queue = application.queue
    reviewer = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(reviewer, f"/review/{application.reference}/claim", token_from="/queue")
    too_long = "é" * (limit + 1)
    refused = post_form(
        reviewer,
        f"/review/{application.reference}/escalate",
        {"reason": too_long},
        token_from="/queue",
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert f"the limit is {limit:,}" in page or f"the limit is {limit}" in page
    assert too_long in page  # kept in the box
    db.expire_all()
    assert application.queue == original_queue and application.status == Status.in_review
    assert db.scalars(select(Note.body).where(Note.application_id == application.id)).all() == []
    taken = post_form(
        reviewer,
        f"/review/{application.reference}/escalate",
        {"reason": "é" * limit},
        token_from="/queue",
    )
    assert taken.status_code == 302
    db.expire_all()
    assert application.queue == "escalations"
