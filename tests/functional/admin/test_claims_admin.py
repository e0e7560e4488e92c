"""Admins see who holds what and reassign work; the rules of who may take an application hold."""

from __future__ import annotations

from sqlalchemy import select

from reviewapp.applications.models import Status
from reviewapp.audit.models import AuditEvent
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


def test_admin_sees_claims_and_reassigns(login, db) -> None:
    staff = OrganizationFactory()
    alice = UserFactory(reviewer=True, organization=staff, email="alice@ts.example")
    bob = UserFactory(reviewer=True, organization=staff, email="bob@ts.example")
    admin = UserFactory(admin=True, organization=staff)
    application = ApplicationFactory(submitted=True)
    post_form(login(alice), f"/review/{application.reference}/claim", token_from="/queue")
    client = login(admin)
    page = client.get("/admin/claims").get_data(as_text=True)
    assert application.reference in page and "alice@ts.example" in page and "until" in page
    response = post_form(
        client,
        f"/admin/claims/{application.reference}/reassign",
        {"reviewer_id": str(bob.id)},
        token_from="/admin/claims",
        follow_redirects=True,
    )
    assert f"{application.reference} is now with bob@ts.example." in response.get_data(as_text=True)
    db.expire_all()
    assert application.claimed_by_id == bob.id and application.status == Status.in_review
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "application.reassign")).one()
    assert event.before["claimed_by_id"] == alice.id and event.after["reviewer"] == bob.email
    # alice's page now says bob holds it; her decision would be refused
    assert "Claimed by bob@ts.example" in login(alice).get(
        f"/review/{application.reference}"
    ).get_data(as_text=True)


def test_reassign_respects_who_may_take_it(login, db) -> None:
    staff = OrganizationFactory()
    admin = UserFactory(admin=True, organization=staff)
    application = ApplicationFactory(submitted=True)
    same_org = UserFactory(reviewer=True, organization=application.organization)
    developer = UserFactory(organization=staff)
    client = login(admin)
    for target, message in (
        (same_org, "your own organization"),
        (developer, "Only reviewers claim"),
    ):
        response = post_form(
            client,
            f"/admin/claims/{application.reference}/reassign",
            {"reviewer_id": str(target.id)},
            token_from="/admin/claims",
            follow_redirects=True,
        )
        assert message in response.get_data(as_text=True)
    missing = post_form(
        client,
        f"/admin/claims/{application.reference}/reassign",
        {"reviewer_id": "nope"},
        token_from="/admin/claims",
        follow_redirects=True,
    )
    assert "Choose the reviewer" in missing.get_data(as_text=True)
    db.expire_all()
    assert application.status == Status.queued and application.claimed_by_id is None
