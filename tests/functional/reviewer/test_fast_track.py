"""Fast track of low-risk tiers: automatic approval, and the QA sample a person decides."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from reviewapp.applications.models import Status
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.auth.services import issue_token
from reviewapp.review.fast_track import in_qa_sample
from reviewapp.review.models import Decision, RiskTier
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory


@pytest.fixture()
def fast_low(db):  # noqa: ANN001, ANN201
    def configure(rate: float) -> None:
        tier = db.scalars(select(RiskTier).where(RiskTier.name == "low")).one()
        tier.auto_approve, tier.qa_sample_rate = True, rate
        db.flush()

    return configure


def test_low_tier_is_approved_automatically_and_the_developer_is_told(
    login, db, app, fast_low
) -> None:
    fast_low(0.0)
    with app.app_context():  # the outbox schedules its delivery on the app
        application = ApplicationFactory(submitted=True)
        high = ApplicationFactory(submitted=True, high_tier=True)
    db.expire_all()
    assert application.risk_tier == "low" and application.status == Status.approved
    decision = db.get(Decision, application.last_decision_id)
    assert decision.reviewer_id is None and decision.outcome == "approve"
    assert high.status == Status.queued  # other tiers still go to a person
    outbox = db.scalars(select(OutboxEvent).where(OutboxEvent.kind != "submitted")).all()
    assert [(e.kind, e.payload["application"]) for e in outbox] == [
        ("decision", application.reference)
    ]
    assert outbox[0].payload["to"] == [application.submitter.email]
    events = db.scalars(
        select(AuditEvent.action).where(AuditEvent.subject_id == application.reference)
    ).all()
    assert "decision.auto_approve" in events
    page = login(application.submitter).get(f"/applications/{application.reference}")
    assert "fast track for low-risk use cases" in page.get_data(as_text=True)
    review = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    assert "automatic approval" in review.get(f"/review/{application.reference}").get_data(
        as_text=True
    )


def test_qa_sample_goes_to_a_person(login, db, app, fast_low) -> None:
    fast_low(1.0)
    with app.app_context():
        application = ApplicationFactory(submitted=True)
    db.expire_all()
    assert application.status == Status.queued and application.queue == "qa-sample"
    assert application.last_decision_id is None
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    assert "qa-sample" in client.get("/queue?queue=qa-sample").get_data(as_text=True)
    taken = post_form(client, "/queue/claim-next", {"queue": "qa-sample"}, token_from="/queue")
    assert taken.location.endswith(application.reference)


def test_sample_share_follows_the_rate_and_is_reproducible() -> None:
    picks = [in_qa_sample(f"APP-{i:06d}", 1, 0.1) for i in range(20_000)]
    assert 0.09 < sum(picks) / len(picks) < 0.11
    assert picks == [in_qa_sample(f"APP-{i:06d}", 1, 0.1) for i in range(20_000)]
    assert not any(in_qa_sample(f"APP-{i:06d}", 1, 0.0) for i in range(1000))
    assert all(in_qa_sample(f"APP-{i:06d}", 1, 1.0) for i in range(1000))


def test_submitting_a_fast_tracked_application_says_it_was_approved(
    login, db, app, fast_low
) -> None:
    fast_low(0.0)
    application = ApplicationFactory()  # a draft
    client = login(application.submitter)
    ref = application.reference
    page = post_form(
        client,
        f"/applications/{ref}/submit",
        token_from=f"/applications/{ref}",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert f"{ref} submitted and approved automatically" in page
    assert "placed in the standard queue" not in page

    draft = ApplicationFactory(submitter=application.submitter)
    token = issue_token(db, application.submitter, scopes="read write")
    response = client.post(
        f"/api/v1/applications/{draft.reference}/submit",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200 and response.json["status"] == "approved"
    assert response.json["decision"]["outcome"] == "approve"
    assert "fast track" in response.json["decision"]["message"]


def test_a_qa_sampled_submission_is_confirmed_to_the_developer(app, db, fast_low) -> None:
    fast_low(1.0)
    with app.app_context():
        application = ApplicationFactory(submitted=True)
    db.expire_all()
    assert application.queue == "qa-sample"
    [received] = db.scalars(select(OutboxEvent).where(OutboxEvent.kind == "submitted")).all()
    assert received.payload["application"] == application.reference
    assert "qa-sample queue" in received.payload["body"]


def test_the_fast_track_message_is_not_for_people(login, db) -> None:
    """Its text tells the developer no person reviewed the application: neither the decision
    form nor the queue's bulk form offers it, and a decision sent with it anyway is refused."""
    from sqlalchemy import func

    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory(name="T&S")))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    page = client.get(f"/review/{application.reference}").get_data(as_text=True)
    assert 'value="approve-automatic"' not in page and 'value="approve-standard"' in page
    queue = client.get("/queue").get_data(as_text=True)
    assert 'value="approve-automatic"' not in queue and 'value="approve-standard"' in queue
    refused = post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "approve", "template": "approve-automatic"},
        token_from=f"/review/{application.reference}",
    )
    assert refused.status_code == 422
    assert "the fast track&#39;s own message" in refused.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Decision)) == 0
