"""Claiming one application picked from the queue, and renewing its lease, through the JSON API:
an API client that chose an application from ``GET /api/v1/queue`` could only claim-next, so it
could not decide the one it chose. The same rules as the browser's Claim and Renew buttons."""

from __future__ import annotations

import datetime as dt

import time_machine
from sqlalchemy import select

from reviewapp.audit.models import AuditEvent
from reviewapp.auth.services import issue_token
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

DECISION = {"outcome": "approve", "template": "approve-standard", "citations": []}


def bearer(db, user, scopes: str = "read review") -> dict[str, str]:  # noqa: ANN001
    return {"Authorization": f"Bearer {issue_token(db, user, scopes=scopes)}"}


def _staff_reviewer(**traits: bool):  # noqa: ANN202
    return UserFactory(organization=OrganizationFactory(), **(traits or {"reviewer": True}))


def test_a_reviewer_claims_the_application_they_picked_then_decides_it(client, db) -> None:
    first_in_queue = ApplicationFactory(submitted=True)
    picked = ApplicationFactory(submitted=True)
    reviewer = _staff_reviewer()
    headers = bearer(db, reviewer)
    listed = client.get("/api/v1/queue", headers=headers).json["items"]
    assert [a["reference"] for a in listed][:2] == [first_in_queue.reference, picked.reference]

    # before claiming, deciding is refused (what the trial's API client ran into)
    refused = client.post(
        f"/api/v1/applications/{picked.reference}/decisions", json=DECISION, headers=headers
    )
    assert refused.status_code == 409

    claimed = client.post(f"/api/v1/applications/{picked.reference}/claim", headers=headers)
    assert claimed.status_code == 200, claimed.json
    assert claimed.json["reference"] == picked.reference  # the one picked, not the first
    assert claimed.json["status"] == "in_review"
    lease = dt.datetime.fromisoformat(claimed.json["lease_expires_at"])
    assert lease > dt.datetime.now(dt.UTC)
    assert claimed.headers["ETag"] == f'"{picked.reference}-v{claimed.json["version"]}"'
    db.expire_all()
    assert picked.claimed_by_id == reviewer.id and first_in_queue.claimed_by_id is None
    assert db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "application.claim", AuditEvent.subject_id == picked.reference
        )
    ).one()

    # claiming it again is harmless: still yours, the lease unchanged
    again = client.post(f"/api/v1/applications/{picked.reference}/claim", headers=headers)
    assert (
        again.status_code == 200
        and again.json["lease_expires_at"] == (claimed.json["lease_expires_at"])
    )

    decided = client.post(
        f"/api/v1/applications/{picked.reference}/decisions", json=DECISION, headers=headers
    )
    assert decided.status_code == 201, decided.json
    assert decided.json["application"]["status"] == "approved"
    assert decided.json["application"]["lease_expires_at"] is None


def test_the_lease_is_shown_only_to_its_holder(client, db) -> None:
    application = ApplicationFactory(submitted=True)
    holder = bearer(db, _staff_reviewer())
    other = bearer(db, _staff_reviewer())
    developer = bearer(db, application.submitter, "read")
    client.post(f"/api/v1/applications/{application.reference}/claim", headers=holder)
    url = f"/api/v1/applications/{application.reference}"
    assert client.get(url, headers=holder).json["lease_expires_at"] is not None
    assert client.get(url, headers=other).json["lease_expires_at"] is None
    assert client.get(url, headers=developer).json["lease_expires_at"] is None


def test_someone_else_holds_it_is_a_409_and_nothing_changes(client, db) -> None:
    application = ApplicationFactory(submitted=True)
    holder = _staff_reviewer()
    client.post(f"/api/v1/applications/{application.reference}/claim", headers=bearer(db, holder))
    second = bearer(db, _staff_reviewer())
    taken = client.post(f"/api/v1/applications/{application.reference}/claim", headers=second)
    assert taken.status_code == 409
    assert taken.json["error"]["code"] == "conflict"
    assert "already claimed" in taken.json["error"]["message"]
    db.expire_all()
    assert application.claimed_by_id == holder.id
    # nor can the second reviewer renew or decide it
    renew = client.post(f"/api/v1/applications/{application.reference}/renew", headers=second)
    assert renew.status_code == 409
    decide = client.post(
        f"/api/v1/applications/{application.reference}/decisions", json=DECISION, headers=second
    )
    assert decide.status_code == 409


def test_an_expired_lease_can_be_claimed_by_someone_else(client, db) -> None:
    application = ApplicationFactory(submitted=True)
    client.post(
        f"/api/v1/applications/{application.reference}/claim",
        headers=bearer(db, _staff_reviewer()),
    )
    later = bearer(db, _staff_reviewer())
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=1), tick=False):
        taken = client.post(f"/api/v1/applications/{application.reference}/claim", headers=later)
    assert taken.status_code == 200, taken.json


def test_the_claim_rules_are_the_browsers(client, db) -> None:
    """Your own organization's application, or a queue your role does not work: 403."""
    application = ApplicationFactory(submitted=True)
    colleague = UserFactory(reviewer=True, organization=application.organization)
    own = client.post(
        f"/api/v1/applications/{application.reference}/claim", headers=bearer(db, colleague)
    )
    assert own.status_code == 403 and own.json["error"]["code"] == "forbidden"
    assert "own organization" in own.json["error"]["message"]

    senior_only = ApplicationFactory(submitted=True)
    senior_only.queue = "senior"
    db.flush()
    reviewer = bearer(db, _staff_reviewer())
    refused = client.post(f"/api/v1/applications/{senior_only.reference}/claim", headers=reviewer)
    assert refused.status_code == 403, refused.json
    assert "senior" in refused.json["error"]["message"]
    db.expire_all()
    assert application.claimed_by_id is None and senior_only.claimed_by_id is None


def test_another_organizations_application_it_may_not_see_is_404(client, db) -> None:
    draft = ApplicationFactory()  # never submitted: private to its organization
    reviewer = bearer(db, _staff_reviewer())
    outsider = bearer(db, UserFactory(), "read write review")
    for headers in (reviewer, outsider):
        for verb in ("claim", "renew"):
            answer = client.post(f"/api/v1/applications/{draft.reference}/{verb}", headers=headers)
            assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"
            missing = client.post(f"/api/v1/applications/APP-999999/{verb}", headers=headers)
            assert missing.status_code == 404
    submitted = ApplicationFactory(submitted=True)
    answer = client.post(f"/api/v1/applications/{submitted.reference}/claim", headers=outsider)
    assert answer.status_code == 404
    db.expire_all()
    assert draft.claimed_by_id is None and submitted.claimed_by_id is None


def test_a_token_without_the_review_scope_is_refused(client, db) -> None:
    application = ApplicationFactory(submitted=True)
    reviewer = _staff_reviewer()
    no_review = bearer(db, reviewer, "read write")
    for verb in ("claim", "renew"):
        answer = client.post(
            f"/api/v1/applications/{application.reference}/{verb}", headers=no_review
        )
        assert answer.status_code == 403
        assert answer.json["error"]["code"] == "insufficient_scope"
    db.expire_all()
    assert application.claimed_by_id is None


def test_renew_extends_the_holders_lease(client, db, app) -> None:
    application = ApplicationFactory(submitted=True)
    headers = bearer(db, _staff_reviewer())
    url = f"/api/v1/applications/{application.reference}"
    unclaimed = client.post(f"{url}/renew", headers=headers)
    assert unclaimed.status_code == 409 and "claim" in unclaimed.json["error"]["message"]
    start = dt.datetime.now(dt.UTC)
    with time_machine.travel(start, tick=False):
        claimed = client.post(f"{url}/claim", headers=headers).json["lease_expires_at"]
    with time_machine.travel(start + dt.timedelta(minutes=10), tick=False):
        renewed = client.post(f"{url}/renew", headers=headers)
    assert renewed.status_code == 200, renewed.json
    lease = dt.timedelta(seconds=int(app.config["LEASE_SECONDS"]))
    assert dt.datetime.fromisoformat(renewed.json["lease_expires_at"]) == (
        start + dt.timedelta(minutes=10) + lease
    )
    assert renewed.json["lease_expires_at"] > claimed
    assert db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "application.renew_lease",
            AuditEvent.subject_id == application.reference,
        )
    ).one()
    # once it has run out, renew says so; claiming again works
    with time_machine.travel(start + dt.timedelta(days=2), tick=False):
        ended = client.post(f"{url}/renew", headers=headers)
        assert ended.status_code == 409
        assert client.post(f"{url}/claim", headers=headers).status_code == 200
