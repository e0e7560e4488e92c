"""The developer sees only the final outcome (README): after the first approval of a
two-approval tier the application stays "in review" for its organization (page, list, status
filter, API, webhooks), while the review team keeps seeing "awaiting second approval"."""

from __future__ import annotations

import pytest

from reviewapp.applications.models import Application, Status
from reviewapp.auth.models import User
from reviewapp.auth.services import issue_token
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

APPROVE = {"outcome": "approve", "template": "approve-standard", "citations": ["usage-2.1"]}


@pytest.fixture()
def first_approved(login, db) -> tuple[Application, User]:  # noqa: ANN001
    """A high-tier application with its first approval; returns it and the first approver."""
    application = ApplicationFactory(submitted=True, high_tier=True)
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory())
    client = login(reviewer)
    reference = application.reference
    post_form(client, f"/review/{reference}/claim", token_from="/queue")
    response = post_form(
        client, f"/review/{reference}/decide", APPROVE, token_from=f"/review/{reference}"
    )
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.awaiting_second_approval
    return application, reviewer


def test_developer_pages_show_in_review_until_the_second_approval(login, first_approved) -> None:
    application, _ = first_approved
    dev = login(application.submitter)
    page = dev.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "second approval" not in page
    assert '<span class="badge text-bg-warning">in review</span>' in page
    assert "being reviewed" in page
    assert "Withdraw" in page  # what the developer may do while it is in review

    listing = dev.get("/applications").get_data(as_text=True)
    assert "second approval" not in listing and "awaiting_second_approval" not in listing
    assert '<span class="badge text-bg-warning">in review</span>' in listing

    # the "In review" filter finds it; the internal status is not a filter the developer has
    filtered = dev.get("/applications?status=in_review").get_data(as_text=True)
    assert application.reference in filtered
    hidden = dev.get("/applications?status=awaiting_second_approval").get_data(as_text=True)
    assert "awaiting_second_approval" not in hidden


def test_api_shows_developers_in_review_and_reviewers_the_real_status(
    client, db, first_approved
) -> None:
    application, reviewer = first_approved
    ref = application.reference
    developer = {"Authorization": f"Bearer {issue_token(db, application.submitter)}"}
    staff = {"Authorization": f"Bearer {issue_token(db, reviewer)}"}

    assert client.get(f"/api/v1/applications/{ref}", headers=developer).json["status"] == (
        "in_review"
    )
    listed = client.get("/api/v1/applications?status=in_review", headers=developer).json
    assert [(i["reference"], i["status"]) for i in listed["items"]] == [(ref, "in_review")]
    refused = client.get("/api/v1/applications?status=awaiting_second_approval", headers=developer)
    assert refused.status_code == 422 and refused.json["error"]["fields"] == {
        "status": "unknown value"
    }
    # refusals name the status the developer sees, too
    for path in (f"/api/v1/applications/{ref}/resubmit", f"/api/v1/applications/{ref}/submit"):
        refusal = client.post(path, headers=developer)
        assert refusal.status_code == 409, path
        assert "second approval" not in refusal.json["error"]["message"]
        assert "in review" in refusal.json["error"]["message"]
    statuses = client.get("/api/v1/catalogue", headers=developer).json["statuses"]
    assert "awaiting_second_approval" not in statuses and "in_review" in statuses

    assert client.get(f"/api/v1/applications/{ref}", headers=staff).json["status"] == (
        "awaiting_second_approval"
    )
    mine = client.get("/api/v1/applications?status=awaiting_second_approval", headers=staff).json
    assert ref in [i["reference"] for i in mine["items"]]
    assert (
        "awaiting_second_approval"
        in client.get("/api/v1/catalogue", headers=staff).json["statuses"]
    )


def test_reviewers_keep_the_real_status(login, first_approved) -> None:
    application, _ = first_approved
    senior = login(UserFactory(senior=True, organization=OrganizationFactory()))
    page = senior.get(f"/review/{application.reference}").get_data(as_text=True)
    assert "awaiting second approval" in page


def test_webhook_documents_show_the_organization_in_review(db, first_approved) -> None:
    from reviewapp.audit.models import OutboxEvent
    from reviewapp.webhooks.services import event_document

    application, _ = first_approved
    event = OutboxEvent(kind="submitted", payload={"application": application.reference})
    db.add(event)
    db.flush()
    found = event_document(db, event)
    assert found is not None and found[1]["data"]["status"] == "in_review"
