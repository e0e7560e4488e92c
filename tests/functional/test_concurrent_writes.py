"""A request that loses a race with another one (a double-clicked decision, a decision while
the developer withdraws, the same appeal sent twice) gets a 409 with a clear message, and the
browser form keeps what was typed; never a 500, and nothing of the loser is stored.

The races are made deterministic: just before the losing request writes, the test commits the
winner's change through the same database transaction (raw SQL, so the request's ORM objects do
not see it), exactly what a concurrent request committing first looks like at flush time.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.orm import Session

from reviewapp.applications.models import Application, Status
from reviewapp.auth.services import issue_token
from reviewapp.review import views as review_views
from reviewapp.review.models import Appeal, Decision
from tests.conftest import csrf_token, post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

STATEMENT = "The deployment never decides credit; a person reads every answer first."


def _bump_version_first(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
    """Make ``target.name`` (a service the view calls) run after another request changed the
    application: its version moves on in the database behind the ORM's back."""
    real = getattr(target, name)

    def racing(session: Session, actor: Any, application: Application, *args: Any) -> Any:
        session.connection().execute(
            text("UPDATE application SET version = version + 1 WHERE id = :id"),
            {"id": application.id},
        )
        return real(session, actor, application, *args)

    monkeypatch.setattr(target, name, racing)


def test_a_decision_that_loses_a_race_keeps_the_typed_text(login, db, monkeypatch) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    _bump_version_first(monkeypatch, review_views, "decide")
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            "outcome": "reject",
            "citations": ["usage-1.5"],
            "template": "reject-prohibited",
            "reviewer_note": "my careful note",
            "rationale": "my reasoning",
        },
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone else changed this at the same moment" in page
    assert "my careful note" in page and "my reasoning" in page
    assert db.scalar(select(func.count()).select_from(Decision)) == 0


def test_an_api_decision_that_loses_a_race_is_a_409(client, db, monkeypatch) -> None:
    from reviewapp.api import views as api_views

    application = ApplicationFactory(submitted=True)
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory())
    headers = {"Authorization": f"Bearer {issue_token(db, reviewer, scopes='read review')}"}
    claimed = client.post("/api/v1/queue/claim-next", headers=headers)
    assert claimed.status_code == 200
    _bump_version_first(monkeypatch, api_views, "decide")
    response = client.post(
        f"/api/v1/applications/{application.reference}/decisions",
        headers=headers,
        json={"outcome": "reject", "citations": ["usage-1.5"], "template": "reject-prohibited"},
    )
    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "conflict"
    assert "at the same moment" in response.json["error"]["message"]
    assert db.scalar(select(func.count()).select_from(Decision)) == 0


def test_the_same_appeal_sent_twice_at_once_is_a_409(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    staff = OrganizationFactory()
    senior = login(UserFactory(senior=True, organization=staff))
    post_form(senior, f"/review/{application.reference}/claim", token_from="/queue")
    post_form(
        senior,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        token_from="/queue",
    )
    db.expire_all()
    assert application.status == Status.rejected
    decision = db.get(Decision, application.last_decision_id)
    assert decision is not None
    developer = application.submitter
    dev = login(developer)
    token = csrf_token(dev, f"/applications/{application.reference}")

    def twin_committed_first(session: Session, flush_context: Any, instances: Any) -> None:
        # the other request's identical appeal reaches the table between our check and insert
        if any(isinstance(obj, Appeal) for obj in session.new):
            session.connection().execute(
                insert(Appeal).values(
                    application_id=application.id,
                    revision_id=decision.revision_id,
                    decision_id=decision.id,
                    statement=STATEMENT,
                    created_by_id=developer.id,
                )
            )

    event.listen(Session, "before_flush", twin_committed_first)
    try:
        response = dev.post(
            f"/applications/{application.reference}/appeal",
            data={"statement": STATEMENT, "csrf_token": token},
        )
        api = dev.application.test_client()
        api_headers = {"Authorization": f"Bearer {issue_token(db, developer)}"}
        db.execute(text("DELETE FROM appeal"))
        db.expire_all()
        answer = api.post(
            f"/api/v1/applications/{application.reference}/appeal",
            headers=api_headers,
            json={"statement": STATEMENT},
        )
    finally:
        event.remove(Session, "before_flush", twin_committed_first)
    # the browser form is shown again (422, as for any appeal not filed) with the text kept
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The appeal was not filed: Someone else changed this at the same moment" in page
    assert "a person reads every answer first" in page
    assert answer.status_code == 409 and answer.json["error"]["code"] == "conflict"


def test_a_damaged_version_mark_refuses_the_decision(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(client, f"/review/{application.reference}/claim", token_from="/queue")
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {"outcome": "approve", "template": "approve-standard", "version": "abc"},
        token_from=f"/review/{application.reference}",
    )
    assert response.status_code == 422
    assert "version mark is damaged" in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Decision)) == 0
