"""Policy clarification requests: a developer asks, the policy team answers, only the
developer's organization sees it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_login import FlaskLoginClient
from sqlalchemy import select

from reviewapp import create_app
from reviewapp.audit.models import AuditEvent
from reviewapp.extensions import db as database
from reviewapp.policies.clarifications import ClarificationRequest
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

QUESTION = "Does voice cloning of consenting actors count as impersonation?"


@pytest.fixture(scope="module")
def app(app: Flask, database_url: str) -> Iterator[Flask]:
    """The session app if it registers ``clarifications`` and ``policy_editor``, else a fresh
    one that does."""
    if "policy_editor" in app.blueprints and "clarifications" in app.blueprints:
        yield app
        return
    from reviewapp.policies.clarifications import bp as clarifications_bp
    from reviewapp.policies.editor import bp as editor_bp

    application = create_app("testing", DATABASE_URL=database_url, REDIS_URL=None)
    for bp in (editor_bp, clarifications_bp):
        if bp.name not in application.blueprints:
            application.register_blueprint(bp)
    application.test_client_class = FlaskLoginClient
    yield application
    database.state(application).engine.dispose()
    database.state(app).engine.dispose()


def test_developer_asks_admin_answers_developer_sees(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    developer = login(application.submitter)
    ask = "/policies/usage-1.5/clarifications"
    short = post_form(
        developer, ask, {"kind": "clarification", "message": "too short"}, token_from=ask
    )
    assert short.status_code == 422 and b"too short" in short.data
    foreign = ApplicationFactory(submitted=True)
    not_ours = post_form(
        developer,
        ask,
        {"kind": "change", "message": QUESTION, "application": foreign.reference},
        token_from=ask,
    )
    assert not_ours.status_code == 422 and b"not one of your organization" in not_ours.data
    sent = post_form(
        developer,
        ask,
        {"kind": "change", "message": QUESTION, "application": application.reference},
        token_from=ask,
    )
    assert sent.status_code == 302
    row = db.scalars(select(ClarificationRequest)).one()
    assert row.status == "open" and row.application_id == application.id
    assert row.organization_id == application.organization_id
    assert row.version.section.key == "usage-1.5"

    staff = OrganizationFactory(name="Policy team")
    admin = login(UserFactory(admin=True, organization=staff))
    inbox = admin.get("/admin/policies/clarifications").get_data(as_text=True)
    assert QUESTION in inbox
    respond = f"/admin/policies/clarifications/{row.id}"
    empty = post_form(admin, respond, {"decision": "answered", "answer": ""}, token_from=respond)
    assert empty.status_code == 422
    done = post_form(
        admin,
        respond,
        {"decision": "answered", "answer": "Yes, with **written consent** it is allowed."},
        token_from=respond,
    )
    assert done.status_code == 302
    again = post_form(
        admin, respond, {"decision": "declined", "answer": "No."}, token_from="/policies"
    )
    assert again.status_code == 409
    assert db.scalars(
        select(AuditEvent).where(AuditEvent.action == "policy_clarification.answer")
    ).one()

    mine = developer.get("/clarifications").get_data(as_text=True)
    assert QUESTION in mine and "<strong>written consent</strong>" in mine
    detail = developer.get(f"/clarifications/{row.id}")
    assert detail.status_code == 200 and b"written consent" in detail.data

    other = login(UserFactory())
    assert other.get(f"/clarifications/{row.id}").status_code == 404
    assert QUESTION not in other.get("/clarifications").get_data(as_text=True)


def test_only_developers_ask_and_only_admins_answer(login, client, db) -> None:
    ask = "/policies/usage-1.1/clarifications"
    assert client.get(ask).status_code == 302
    assert client.get("/clarifications").status_code == 302
    reviewer = login(UserFactory(reviewer=True))
    assert reviewer.get(ask).status_code == 403
    assert reviewer.get("/admin/policies/clarifications").status_code == 403
    developer = login(UserFactory())
    assert developer.get(ask).status_code == 200
    assert developer.get("/policies/nope/clarifications").status_code == 404
    assert developer.get("/admin/policies/clarifications").status_code == 403
    assert developer.get("/admin/policies/clarifications/999999").status_code == 403
    admin = login(UserFactory(admin=True))
    assert admin.get("/admin/policies/clarifications/999999").status_code == 404
    assert admin.get("/admin/policies/clarifications?status=bogus&section=x").status_code == 200


def test_ask_include_renders_for_each_kind_of_visitor(app, login, db) -> None:
    """The include for templates/policies/section.html (needs ``section`` and ``version``)."""
    from flask import render_template_string
    from flask_login import login_user, logout_user

    from reviewapp.policies.models import PolicySection

    section = db.scalars(select(PolicySection).where(PolicySection.key == "usage-1.1")).one()
    source = '{% include "clarifications/_ask.html" %}'
    with app.test_request_context("/policies/usage-1.1"):
        anonymous = render_template_string(source, section=section, version=section.current)
        assert "Log in" in anonymous and "<form" not in anonymous
        login_user(UserFactory())
        developer = render_template_string(source, section=section, version=section.current)
        assert 'action="/policies/usage-1.1/clarifications"' in developer
        assert 'name="csrf_token"' in developer
        logout_user()
        login_user(UserFactory(reviewer=True))
        reviewer = render_template_string(source, section=section, version=section.current)
        assert "<form" not in reviewer


def test_developer_asks_from_a_decision(login, db) -> None:
    from sqlalchemy import select as _select

    from reviewapp.policies.clarifications import ClarificationRequest as _Request
    from tests.conftest import post_form as _post
    from tests.factories import ApplicationFactory as _App
    from tests.factories import OrganizationFactory as _Org
    from tests.factories import UserFactory as _User

    application = _App(submitted=True)
    reviewer = login(_User(reviewer=True, organization=_Org()))
    _post(reviewer, f"/review/{application.reference}/claim", token_from="/queue")
    _post(
        reviewer,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        token_from="/queue",
    )
    dev = login(application.submitter)
    page = dev.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "Ask the policy team about a cited section" in page
    assert f'name="application" value="{application.reference}"' in page
    response = _post(
        dev,
        "/policies/usage-1.5/clarifications",
        {
            "kind": "clarification",
            "message": "Does a flash-card app that never takes payments fall under this clause?",
            "application": application.reference,
            "version": "1",
        },
        token_from=f"/applications/{application.reference}",
    )
    assert response.status_code in (200, 302, 303)
    request = db.scalars(_select(_Request)).one()
    assert request.application_id == application.id
