"""Policy managers edit response templates and safety requirements: templates render in the
Jinja sandbox, an unknown placeholder is refused on save (and at decision time) with its name,
a preview renders the unsaved text against a real application, and every save is audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask_login import FlaskLoginClient
from sqlalchemy import func, select

from reviewapp import create_app
from reviewapp.audit.models import AuditEvent
from reviewapp.auth.models import User
from reviewapp.extensions import db as database
from reviewapp.policies.models import ResponseTemplate, SafetyRequirement
from reviewapp.review.models import Decision
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

BASE = "/admin/catalogue"
UNKNOWN = "Hello {{ reviewer_name }}, about {{ application.reference }}."


@pytest.fixture(scope="module")
def app(app: Flask, database_url: str) -> Iterator[Flask]:
    """The session app if create_app registers ``policy_admin``, else one that does (the
    session app has served requests, so blueprints can no longer be added to it)."""
    if "policy_admin" in app.blueprints:
        yield app
        return
    from reviewapp.policies.admin import bp

    application = create_app("testing", DATABASE_URL=database_url, REDIS_URL=None)
    application.register_blueprint(bp)
    application.test_client_class = FlaskLoginClient
    yield application
    database.state(application).engine.dispose()
    database.state(app).engine.dispose()


def staff(**traits: bool) -> User:
    return UserFactory(organization=OrganizationFactory(), **traits)


def events(db, action: str, subject_id: str) -> list[AuditEvent]:  # noqa: ANN001
    return list(
        db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.subject_id == subject_id)
            .order_by(AuditEvent.id)
        )
    )


def template(db, key: str) -> ResponseTemplate:  # noqa: ANN001
    db.expire_all()
    return db.scalars(select(ResponseTemplate).where(ResponseTemplate.key == key)).one()


def requirement(db, key: str) -> SafetyRequirement:  # noqa: ANN001
    db.expire_all()
    return db.scalars(select(SafetyRequirement).where(SafetyRequirement.key == key)).one()


def post(client, path: str, data: dict[str, str]):  # noqa: ANN001, ANN201
    return post_form(client, path, data, token_from=path)


# --- access ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        BASE,
        f"{BASE}/templates/new",
        f"{BASE}/templates/approve-standard",
        f"{BASE}/requirements/age-assurance",
    ],
)
def test_only_policy_managers_get_in(app, login, db, path: str) -> None:
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.location
    for user in (UserFactory(), staff(reviewer=True), staff(senior=True)):
        assert login(user).get(path).status_code == 403
    assert login(staff(admin=True)).get(path).status_code == 200


def test_unknown_keys_are_404(login, db) -> None:
    client = login(staff(admin=True))
    assert client.get(f"{BASE}/templates/no-such-template").status_code == 404
    assert client.get(f"{BASE}/requirements/no-such-requirement").status_code == 404


def test_list_shows_templates_and_requirements(login, db) -> None:
    page = login(staff(admin=True)).get(BASE).get_data(as_text=True)
    assert "approve-standard" in page and "Approval with conditions" in page
    assert "age-assurance" in page and "Minimum user age (13–21 years)" in page
    assert f'href="{BASE}/templates/approve-standard"' in page
    assert f'href="{BASE}/requirements/age-assurance"' in page


# --- response templates ------------------------------------------------------------------------


def test_edit_template_saves_and_audits_before_and_after(login, db) -> None:
    admin = staff(admin=True)
    client = login(admin)
    old = template(db, "reject-prohibited")
    old_body = old.body
    body = "Hello {{ organization }}, we cannot approve {{ application.reference }}."
    response = post(
        client,
        f"{BASE}/templates/reject-prohibited",
        {"title": "Rejection (prohibited)", "outcome": "reject", "body": body},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    saved = template(db, "reject-prohibited")
    assert (saved.title, saved.body) == ("Rejection (prohibited)", body)
    [event] = events(db, "response_template.update", "reject-prohibited")
    assert event.actor_id == admin.id
    assert event.before == {"title": "Rejection (prohibited use)", "body": old_body}
    assert event.after == {"title": "Rejection (prohibited)", "body": body}
    # saving the same text again changes nothing and records nothing
    response = post(
        client,
        f"{BASE}/templates/reject-prohibited",
        {"title": "Rejection (prohibited)", "outcome": "reject", "body": body},
    )
    assert response.status_code == 302
    assert "had no changes" in client.get(response.location).get_data(as_text=True)
    assert len(events(db, "response_template.update", "reject-prohibited")) == 1


def test_unknown_placeholder_is_refused_by_name_and_text_kept(login, db) -> None:
    client = login(staff(admin=True))
    before = template(db, "approve-standard").body
    response = post(
        client,
        f"{BASE}/templates/approve-standard",
        {"title": "Approval", "outcome": "approve", "body": UNKNOWN},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    # the message names the placeholder and sits next to the body field
    assert 'id="body-error"' in page
    error = page[page.index('id="body-error"') :][:400]
    assert "&#39;reviewer_name&#39; is undefined" in error
    assert "Hello {{ reviewer_name }}, about {{ application.reference }}." in page
    assert template(db, "approve-standard").body == before
    assert events(db, "response_template.update", "approve-standard") == []


def test_syntax_error_and_unsafe_access_are_refused(login, db) -> None:
    client = login(staff(admin=True))
    for body, message in [
        ("{% if organization %}unclosed", "Template syntax error on line 1"),
        ("{{ organization.__class__.__mro__ }}", "does something templates may not do"),
    ]:
        response = post(
            client,
            f"{BASE}/templates/approve-standard",
            {"title": "Approval", "outcome": "approve", "body": body},
        )
        assert response.status_code == 422 and message in response.get_data(as_text=True)


def test_preview_renders_against_an_application_without_saving(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(staff(admin=True))
    before = template(db, "mitigations-standard").body
    body = (
        "Hello **{{ organization }}**: {{ application.reference }} <script>alert(1)</script>\n"
        "{% for c in citations %}\n- [{{ c.number }} {{ c.title }}]({{ c.url }})\n{% endfor %}\n"
        "{% for r in safety_requirements %}\n* {{ r.title }} ({{ r.parameters | join('; ') }})"
        " {{ r.reason }}\n{% endfor %}\n\n{{ reviewer_note }}"
    )
    response = post(
        client,
        f"{BASE}/templates/mitigations-standard",
        {
            "title": "Mitigations requested",
            "outcome": "request_mitigations",
            "body": body,
            "reference": application.reference.lower(),
            "preview": "1",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page[:3000]
    preview = page[page.index('id="preview"') :]
    assert f"<strong>{application.organization.name}</strong>" in preview
    assert application.reference in preview
    assert "<script>alert(1)</script>" not in page  # raw HTML is not rendered
    assert "/policies/" in preview  # the example citation links to its pinned version
    # typical requirements: the catalogue's first entries, with their smallest parameter values
    assert "Age assurance" in preview and "Minimum user age: 13 years" in preview
    assert "Example reason given by the reviewer." in preview
    assert "reviewer&#39;s note appears" in preview or "reviewer's note appears" in preview
    # the typed text is kept in the form, nothing is saved or audited
    assert "{{ reviewer_note }}" in page
    assert template(db, "mitigations-standard").body == before
    assert events(db, "response_template.update", "mitigations-standard") == []


def test_preview_reports_unknown_reference_and_placeholder(login, db) -> None:
    client = login(staff(admin=True))
    draft = ApplicationFactory()
    for reference in ("APP-999999", draft.reference, "nonsense", ""):
        response = post(
            client,
            f"{BASE}/templates/approve-standard",
            {"outcome": "approve", "body": "Hi", "reference": reference, "preview": "1"},
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 422
        error = page[page.index('id="reference-error"') :][:300]
        assert "submitted application" in error
        assert 'id="preview"' not in page
    application = ApplicationFactory(submitted=True)
    response = post(
        client,
        f"{BASE}/templates/approve-standard",
        {"body": UNKNOWN, "reference": application.reference, "preview": "1"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and 'id="preview"' not in page
    assert "&#39;reviewer_name&#39; is undefined" in page[page.index('id="body-error"') :][:400]


def test_create_template_checks_key_and_body(login, db) -> None:
    admin = staff(admin=True)
    client = login(admin)
    path = f"{BASE}/templates/new"
    good = {"title": "Research approval", "outcome": "approve", "body": "Hi {{ organization }}."}
    for key, message in [
        ("", "Choose a key"),
        ("Bad Key", "lowercase letters, digits and dashes"),
        ("-leading", "lowercase letters, digits and dashes"),
        ("approve-standard", "already exists"),
    ]:
        response = post(client, path, {**good, "key": key})
        page = response.get_data(as_text=True)
        assert response.status_code == 422, key
        assert message in page[page.index('id="key-error"') :][:300], key
        assert "Research approval" in page  # what was typed is kept
    response = post(client, path, {**good, "key": "approve-research", "body": UNKNOWN})
    assert response.status_code == 422
    assert "&#39;reviewer_name&#39; is undefined" in response.get_data(as_text=True)
    count = db.scalar(select(func.count()).select_from(ResponseTemplate))
    response = post(client, path, {**good, "key": "approve-research"})
    assert response.status_code == 302 and response.location.endswith(
        f"{BASE}/templates/approve-research"
    )
    assert db.scalar(select(func.count()).select_from(ResponseTemplate)) == count + 1
    created = template(db, "approve-research")
    assert (created.title, created.outcome) == ("Research approval", "approve")
    [event] = events(db, "response_template.create", "approve-research")
    assert event.actor_id == admin.id and event.before is None
    assert event.after == {
        "title": "Research approval",
        "outcome": "approve",
        "body": "Hi {{ organization }}.",
    }


def test_stale_form_is_refused_not_overwritten(login, db) -> None:
    client = login(staff(admin=True))
    path = f"{BASE}/templates/approve-automatic"
    row = template(db, "approve-automatic")
    response = post(
        client,
        path,
        {
            "title": "Mine",
            "outcome": "approve",
            "body": "Mine {{ organization }}",
            "fingerprint": "0" * 32,  # opened before someone else's save
        },
    )
    assert response.status_code == 409
    assert "Someone else saved this entry" in response.get_data(as_text=True)
    assert template(db, "approve-automatic").body == row.body


# --- safety requirements -----------------------------------------------------------------------


def test_edit_requirement_validates_parameters(login, db) -> None:
    client = login(staff(admin=True))
    path = f"{BASE}/requirements/age-assurance"
    form = {"title": "Age assurance", "description": "Check ages."}
    for parameters, message in [
        ("- name: [unclosed", "not valid YAML"),
        ("name: x", "YAML list"),
        ("- name: 2fast\n  min: 1\n  max: 2", "must be an identifier"),
        ("- name: age\n  min: 30\n  max: 20", "min (30) must not be larger than max (20)"),
        ("- name: age\n  min: 1.5\n  max: 20", "whole numbers"),
        ("- name: age\n  min: yes\n  max: 20", "whole numbers"),
        ("- name: age\n  min: 1\n  max: 2\n- name: age\n  min: 1\n  max: 2", "used twice"),
        ("- name: age\n  min: 1\n  max: 2\n  colour: red", "unknown field(s): colour"),
    ]:
        response = post(client, path, {**form, "parameters": parameters})
        page = response.get_data(as_text=True)
        assert response.status_code == 422, parameters
        assert message in page[page.index('id="parameters-error"') :][:400], parameters
    assert requirement(db, "age-assurance").parameters[0]["min"] == 13


def test_edit_requirement_saves_and_audits(login, db) -> None:
    admin = staff(admin=True)
    client = login(admin)
    path = f"{BASE}/requirements/age-assurance"
    page = client.get(path).get_data(as_text=True)
    assert "minimum_user_age" in page and "max: 21" in page  # current specs as YAML
    old = requirement(db, "age-assurance")
    old_params = list(old.parameters)
    response = post(
        client,
        path,
        {
            "title": old.title,
            "description": old.description,
            "parameters": "- name: minimum_user_age\n  label: Minimum user age\n  unit: years\n"
            "  min: 16\n  max: 21\n",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    saved = requirement(db, "age-assurance")
    assert saved.parameters == [
        {
            "name": "minimum_user_age",
            "label": "Minimum user age",
            "unit": "years",
            "min": 16,
            "max": 21,
        }
    ]
    [event] = events(db, "safety_requirement.update", "age-assurance")
    assert event.actor_id == admin.id
    assert event.before == {"parameters": old_params}
    assert event.after == {"parameters": saved.parameters}
    # parameters can be removed altogether
    response = post(
        client,
        path,
        {"title": "Age checks", "description": old.description, "parameters": ""},
    )
    assert response.status_code == 302
    assert requirement(db, "age-assurance").parameters == []
    assert requirement(db, "age-assurance").title == "Age checks"


# --- decision time -----------------------------------------------------------------------------


def test_template_with_unknown_placeholder_cannot_be_sent(login, db) -> None:
    """A template changed behind the editor's back (straight in the database) is still
    refused when a reviewer decides with it, and the message names the placeholder."""
    row = template(db, "reject-prohibited")
    row.body = UNKNOWN
    db.flush()
    application = ApplicationFactory(submitted=True)
    client = login(staff(reviewer=True))
    claim = post_form(
        client,
        f"/review/{application.reference}/claim",
        token_from=f"/review/{application.reference}",
    )
    assert claim.status_code == 302
    db.expire_all()
    response = post_form(
        client,
        f"/review/{application.reference}/decide",
        {
            "outcome": "reject",
            "citations": ["usage-1.5"],
            "template": "reject-prohibited",
            "reviewer_note": "kept text",
            "version": str(application.version),
        },
        token_from=f"/review/{application.reference}",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "&#39;reviewer_name&#39; is undefined" in page
    assert "kept text" in page
    assert (
        db.scalar(
            select(func.count())
            .select_from(Decision)
            .where(Decision.application_id == application.id)
        )
        == 0
    )


def test_a_template_that_builds_huge_text_is_refused_on_save_and_preview(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    client = login(staff(admin=True))
    before = template(db, "approve-standard").body
    a200 = "a" * 200
    body = (
        f'{{{{ "{a200}"|replace("a","{a200}")|replace("a","{a200}")|replace("a","aaaaaaaaaa") }}}}'
    )
    for extra in ({}, {"reference": application.reference, "preview": "1"}):
        response = post(
            client,
            f"{BASE}/templates/approve-standard",
            {"title": "Approval", "outcome": "approve", "body": body, **extra},
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 422, page[:2000]
        assert "does something templates may not do" in page
        assert 'id="preview"' not in page
    assert template(db, "approve-standard").body == before
