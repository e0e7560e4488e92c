"""Appeals: the developer contests a rejection once per revision; someone other than the
original reviewer upholds or overturns it; the developer sees the outcome."""

from __future__ import annotations

from sqlalchemy import select

from reviewapp.applications.models import Status
from reviewapp.notifications.email import OUTBOX_MEMORY
from reviewapp.review.models import Appeal
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

STATEMENT = "Our deployment never handles payments; the reviewer read 'card' as credit decisions."


def rejected_application(login, staff):  # noqa: ANN001, ANN201
    application = ApplicationFactory(submitted=True)
    original = UserFactory(senior=True, organization=staff)
    client = login(original)
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        token_from="/queue",
    )
    return application, original


def test_appeal_overturned_by_another_senior(login, db) -> None:
    staff = OrganizationFactory()
    application, original = rejected_application(login, staff)
    dev = login(application.submitter)
    short = post_form(
        dev,
        f"/applications/{application.reference}/appeal",
        {"statement": "wrong"},
        token_from="/applications",
    )
    assert (
        short.status_code == 422
        and b"at least 20 characters" in short.data
        and b"wrong" in short.data
    )
    response = post_form(
        dev,
        f"/applications/{application.reference}/appeal",
        {"statement": STATEMENT},
        token_from="/applications",
    )
    assert response.status_code == 302
    filed = dev.get(response.location).get_data(as_text=True)
    assert "A senior reviewer who was not involved in the decision will consider it." in filed
    db.expire_all()
    assert application.status == Status.appealed and application.queue == "appeals"

    refused = post_form(
        login(original),
        f"/review/{application.reference}/claim",
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"You made the decision under appeal" in refused.data
    plain = post_form(
        login(UserFactory(reviewer=True, organization=staff)),
        "/queue/claim-next",
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"Nothing to claim" in plain.data  # the appeals queue is for senior reviewers

    other = login(UserFactory(senior=True, organization=staff))
    taken = post_form(other, "/queue/claim-next", token_from="/queue")
    assert taken.location.endswith(application.reference)
    assert STATEMENT.encode() in other.get(f"/review/{application.reference}").data.replace(
        b"&#39;", b"'"
    )
    OUTBOX_MEMORY.clear()
    decided = post_form(
        other,
        f"/review/{application.reference}/decide",
        {
            "outcome": "approve",
            "template": "approve-standard",
            "reviewer_note": "We misread the use case.",
        },
        token_from="/queue",
    )
    assert decided.status_code == 302
    db.expire_all()
    assert application.status == Status.approved
    appeal = db.scalars(select(Appeal).where(Appeal.application_id == application.id)).one()
    assert appeal.outcome == "overturned" and appeal.decided_by_id != original.id
    assert len(OUTBOX_MEMORY) == 1
    page = dev.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "the rejection was overturned" in page and "We misread the use case." in page


def test_upheld_appeal_cannot_be_filed_again(login, db) -> None:
    staff = OrganizationFactory()
    application, _ = rejected_application(login, staff)
    dev = login(application.submitter)
    post_form(
        dev,
        f"/applications/{application.reference}/appeal",
        {"statement": STATEMENT},
        token_from="/applications",
    )
    other = login(UserFactory(senior=True, organization=staff))
    post_form(other, "/queue/claim-next", token_from="/queue")
    no_mitigations = post_form(
        other,
        f"/review/{application.reference}/decide",
        {
            "outcome": "request_mitigations",
            "template": "mitigations-standard",
            "citations": ["usage-1.5"],
            "safety_requirements": ["rate-limits"],
        },
        token_from="/queue",
    )
    assert no_mitigations.status_code == 422 and b"overturn" in no_mitigations.data
    post_form(
        other,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        token_from="/queue",
    )
    db.expire_all()
    assert application.status == Status.rejected
    assert db.scalars(select(Appeal.outcome)).one() == "upheld"
    page = dev.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "the rejection was upheld" in page and "File appeal" not in page
    again = post_form(
        dev,
        f"/applications/{application.reference}/appeal",
        {"statement": STATEMENT},
        token_from="/applications",
    )
    assert again.status_code == 422 and b"once per revision" in again.data


def test_only_rejections_can_be_appealed(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    response = post_form(
        login(application.submitter),
        f"/applications/{application.reference}/appeal",
        {"statement": STATEMENT},
        token_from="/applications",
    )
    assert (
        response.status_code == 422
        and b"Only a rejected application can be appealed" in response.data
    )


def test_overturning_a_two_approval_tier_needs_a_second_senior(login, db) -> None:
    staff = OrganizationFactory()
    application = ApplicationFactory(submitted=True, high_tier=True)
    original = UserFactory(senior=True, organization=staff)
    first, second = (UserFactory(senior=True, organization=staff) for _ in range(2))
    c_original = login(original)
    post_form(c_original, f"/review/{application.reference}/claim", token_from="/queue")
    rejected = post_form(
        c_original,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        token_from="/queue",
    )
    assert rejected.status_code == 302
    dev = login(application.submitter)
    post_form(
        dev,
        f"/applications/{application.reference}/appeal",
        {"statement": STATEMENT},
        token_from="/applications",
    )
    overturn = {"outcome": "approve", "template": "approve-standard", "citations": ["usage-1.5"]}

    c_first = login(first)
    post_form(c_first, f"/review/{application.reference}/claim", token_from="/queue")
    response = post_form(
        c_first,
        f"/review/{application.reference}/decide",
        overturn,
        token_from="/queue",
        follow_redirects=True,
    )
    assert b"First approval recorded" in response.data
    db.expire_all()
    assert application.status == Status.awaiting_second_approval
    appeal = db.scalars(select(Appeal).where(Appeal.application_id == application.id)).one()
    assert appeal.outcome is None  # still open: one person has overturned it so far

    # neither the first approver nor the reviewer who was appealed against may finish it
    for refused, reason in (
        (c_first, b"another senior reviewer must give the second"),
        (c_original, b"You made the decision under appeal"),
    ):
        page = post_form(
            refused,
            f"/review/{application.reference}/claim",
            token_from="/queue",
            follow_redirects=True,
        )
        assert reason in page.data
    c_second = login(second)
    post_form(c_second, f"/review/{application.reference}/claim", token_from="/queue")
    page = c_second.get(f"/review/{application.reference}").get_data(as_text=True)
    assert "approve to complete the overturn" in page  # the appeal is shown with its statement
    assert "the reviewer read" in page.replace("&#39;", "'")
    done = post_form(
        c_second, f"/review/{application.reference}/decide", overturn, token_from="/queue"
    )
    assert done.status_code == 302
    db.expire_all()
    assert application.status == Status.approved
    assert appeal.outcome == "overturned" and appeal.decided_by_id == second.id
