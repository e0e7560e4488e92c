"""High-tier approvals need two people: a first approval, then a senior reviewer who is not the
first approver. The developer sees only the final outcome."""

from __future__ import annotations

from sqlalchemy import func, select

from reviewapp.applications.models import Status
from reviewapp.notifications.email import OUTBOX_MEMORY
from reviewapp.review.models import Decision
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

APPROVE = {"outcome": "approve", "template": "approve-standard", "citations": ["usage-2.1"]}


def decide(client, reference: str, data: dict):  # noqa: ANN001, ANN201
    post_form(client, f"/review/{reference}/claim", token_from="/queue")
    return post_form(client, f"/review/{reference}/decide", data, token_from=f"/review/{reference}")


def test_first_approval_waits_then_a_different_senior_approves(login, db) -> None:
    application = ApplicationFactory(submitted=True, high_tier=True)
    assert application.risk_tier == "high"
    staff = OrganizationFactory()
    first = UserFactory(reviewer=True, organization=staff)
    senior = UserFactory(senior=True, organization=staff)
    response = decide(login(first), application.reference, APPROVE)
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.awaiting_second_approval
    assert application.last_decision_id is None and application.claimed_by_id is None
    assert OUTBOX_MEMORY == []  # nothing sent yet

    developer_page = (
        login(application.submitter)
        .get(f"/applications/{application.reference}")
        .get_data(as_text=True)
    )
    # the first approval is internal: the developer still sees the application in review
    assert "awaiting second approval" not in developer_page
    assert "in review</span>" in developer_page and "being reviewed" in developer_page
    assert "Latest decision" not in developer_page

    # the first approver cannot give the second approval, nor can a plain reviewer
    refused = post_form(
        login(first),
        f"/review/{application.reference}/claim",
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"needs a senior reviewer" in refused.data
    other_reviewer = UserFactory(reviewer=True, organization=staff)
    refused = post_form(
        login(other_reviewer),
        f"/review/{application.reference}/claim",
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"needs a senior reviewer" in refused.data

    senior_client = login(senior)
    page = senior_client.get(f"/review/{application.reference}").get_data(as_text=True)
    assert "First approval (not final) by" in page
    response = decide(
        senior_client, application.reference, {**APPROVE, "reviewer_note": "Both of us agree."}
    )
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.approved
    decisions = db.scalars(
        select(Decision).where(Decision.application_id == application.id).order_by(Decision.id)
    ).all()
    assert [(d.approval_step, d.final, d.reviewer_id) for d in decisions] == [
        (1, False, first.id),
        (2, True, senior.id),
    ]
    assert application.last_decision_id == decisions[1].id
    assert len(OUTBOX_MEMORY) == 1 and "Both of us agree." in OUTBOX_MEMORY[0].get_content()


def test_a_senior_who_gave_the_first_approval_cannot_give_the_second(login, db) -> None:
    application = ApplicationFactory(submitted=True, high_tier=True)
    staff = OrganizationFactory()
    senior = UserFactory(senior=True, organization=staff)
    client = login(senior)
    decide(client, application.reference, APPROVE)
    db.expire_all()
    assert application.status == Status.awaiting_second_approval
    refused = post_form(
        client, f"/review/{application.reference}/claim", token_from="/queue", follow_redirects=True
    )
    assert b"You gave the first approval" in refused.data
    nothing = post_form(client, "/queue/claim-next", token_from="/queue", follow_redirects=True)
    assert b"Nothing to claim" in nothing.data  # claim-next never offers it to the first approver
    second = UserFactory(senior=True, organization=staff)
    taken = post_form(login(second), "/queue/claim-next", token_from="/queue")
    assert taken.location.endswith(application.reference)


def test_the_second_reviewer_can_reject_instead(login, db) -> None:
    application = ApplicationFactory(submitted=True, high_tier=True)
    staff = OrganizationFactory()
    decide(login(UserFactory(reviewer=True, organization=staff)), application.reference, APPROVE)
    response = decide(
        login(UserFactory(senior=True, organization=staff)),
        application.reference,
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-2.1"]},
    )
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.rejected
    assert (
        db.scalar(select(func.count()).select_from(Decision).where(Decision.final.is_(True))) == 1
    )


def test_low_tier_approval_is_final_at_once(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    assert application.risk_tier == "low"
    decide(
        login(UserFactory(reviewer=True, organization=OrganizationFactory())),
        application.reference,
        {"outcome": "approve", "template": "approve-standard"},
    )
    db.expire_all()
    assert application.status == Status.approved and len(OUTBOX_MEMORY) == 1
