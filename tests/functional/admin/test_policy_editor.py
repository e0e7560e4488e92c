"""Policy editor: Markdown sections with preview; each save is a new, audited version, and
decisions keep citing the version they cited."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
import time_machine
from flask import Flask
from flask_login import FlaskLoginClient
from sqlalchemy import func, select

from reviewapp import create_app
from reviewapp.audit.models import AuditEvent
from reviewapp.extensions import db as database
from reviewapp.policies.models import PolicySection, PolicySectionVersion
from reviewapp.review.models import Citation
from tests.conftest import post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

TODAY = dt.datetime.now(dt.UTC).date().isoformat()


@pytest.fixture(scope="module")
def app(app: Flask, database_url: str) -> Iterator[Flask]:
    """The session app if it registers ``policy_editor`` and ``clarifications``, else a fresh
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


def admin(login):  # noqa: ANN001, ANN201
    return login(UserFactory(admin=True, organization=OrganizationFactory(name="T&S")))


def versions(db, key: str) -> list[PolicySectionVersion]:  # noqa: ANN001
    return list(
        db.scalars(
            select(PolicySectionVersion)
            .join(PolicySection)
            .where(PolicySection.key == key)
            .order_by(PolicySectionVersion.version)
        )
    )


def test_new_version_keeps_old_citations_and_is_audited(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    reviewer = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(reviewer, f"/review/{application.reference}/claim", token_from="/queue")
    decided = post_form(
        reviewer,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        token_from="/queue",
    )
    assert decided.status_code == 302
    v1 = versions(db, "usage-1.5")[-1]
    client = admin(login)
    edit = "/admin/policies/sections/usage-1.5/edit"
    no_summary = post_form(
        client,
        edit,
        {"text": "New text", "effective_date": TODAY, "base_version": str(v1.version)},
        token_from=edit,
    )
    assert no_summary.status_code == 422 and b"Say what changed" in no_summary.data
    assert b"New text" in no_summary.data  # text kept
    past = post_form(
        client,
        edit,
        {
            "text": "New text",
            "effective_date": "2000-01-01",
            "change_summary": "x",
            "base_version": str(v1.version),
        },
        token_from=edit,
    )
    assert past.status_code == 422 and b"cannot be in the past" in past.data
    ok = post_form(
        client,
        edit,
        {
            "text": "Fraud is **still** prohibited.",
            "effective_date": TODAY,
            "change_summary": "Clarified wording",
            "base_version": str(v1.version),
        },
        token_from=edit,
    )
    assert ok.status_code == 302
    rows = versions(db, "usage-1.5")
    assert rows[-1].version == v1.version + 1 and rows[-1].change_summary == "Clarified wording"
    citation = db.scalars(select(Citation)).one()
    assert citation.policy_section_version_id == v1.id
    stale = post_form(
        client,
        edit,
        {
            "text": "Another text",
            "effective_date": TODAY,
            "change_summary": "y",
            "base_version": str(v1.version),
        },
        token_from=edit,
    )
    assert stale.status_code == 409 and b"Another text" in stale.data
    # the refused form now builds on the newer version: publishing again is possible
    rebased = re.search(rb'name="base_version" type="hidden" value="(\d+)"', stale.data)
    assert rebased is not None and int(rebased.group(1)) == v1.version + 1
    event = db.scalars(
        select(AuditEvent).where(AuditEvent.action == "policy_section.new_version")
    ).one()
    assert event.after["version"] == v1.version + 1 and event.before["version"] == v1.version
    public = login(application.submitter).get("/policies/usage-1.5").get_data(as_text=True)
    assert "<strong>still</strong>" in public and "Clarified wording" in public


def test_preview_saves_nothing_and_sanitizes(login, db) -> None:
    client = admin(login)
    before = db.scalar(select(func.count()).select_from(PolicySectionVersion))
    text = "Hello <script>alert(1)</script> [x](javascript:alert(1)) **bold**"
    page = post_form(
        client,
        "/admin/policies/new",
        {
            "key": "usage-9.9",
            "number": "§9.9",
            "title": "Test",
            "text": text,
            "effective_date": TODAY,
            "change_summary": "Initial",
            "preview": "1",
        },
        token_from="/admin/policies/new",
    )
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "<strong>bold</strong>" in body
    assert "<script>alert" not in body and 'href="javascript' not in body
    assert db.scalar(select(func.count()).select_from(PolicySectionVersion)) == before
    created = post_form(
        client,
        "/admin/policies/new",
        {
            "key": "usage-9.9",
            "number": "§9.9",
            "title": "Test",
            "text": text,
            "effective_date": TODAY,
            "change_summary": "Initial",
        },
        token_from="/admin/policies/new",
    )
    assert created.status_code == 302
    public = client.get("/policies/usage-9.9").get_data(as_text=True)
    assert "<script>alert" not in public and "<strong>bold</strong>" in public
    assert db.scalars(select(AuditEvent).where(AuditEvent.action == "policy_section.create")).one()
    dup = post_form(
        client,
        "/admin/policies/new",
        {
            "key": "usage-9.9",
            "number": "§9.9",
            "title": "Test",
            "text": "t",
            "effective_date": TODAY,
            "change_summary": "Initial",
        },
        token_from="/admin/policies/new",
    )
    assert dup.status_code == 409


def test_unknown_key_404_and_non_admin_403(login, client, db) -> None:
    client_admin = admin(login)
    assert client_admin.get("/admin/policies/sections/nope").status_code == 404
    assert client_admin.get("/admin/policies/sections/nope/edit").status_code == 404
    assert client_admin.get("/admin/policies").status_code == 200
    assert client_admin.get("/admin/policies/sections/usage-1.1").status_code == 200
    for user in (UserFactory(), UserFactory(reviewer=True), UserFactory(senior=True)):
        other = login(user)
        assert other.get("/admin/policies").status_code == 403
        assert other.get("/admin/policies/sections/usage-1.1/edit").status_code == 403
    assert client.get("/admin/policies").status_code == 302


def test_a_version_published_for_a_later_date_is_upcoming_until_then(login, db, client) -> None:
    v1 = versions(db, "usage-1.5")[-1]
    later = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=200)
    editor = admin(login)
    edit = "/admin/policies/sections/usage-1.5/edit"
    published = post_form(
        editor,
        edit,
        {
            "text": "From next year: fraud is **strictly** prohibited.",
            "effective_date": later.isoformat(),
            "change_summary": "Stricter wording",
            "base_version": str(v1.version),
        },
        token_from=edit,
    )
    assert published.status_code == 302
    v2 = versions(db, "usage-1.5")[-1]
    assert v2.version == v1.version + 1

    # a decision today cites the version in force, not the upcoming one
    application = ApplicationFactory(submitted=True)
    reviewer = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(reviewer, f"/review/{application.reference}/claim", token_from="/queue")
    decided = post_form(
        reviewer,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-1.5"]},
        token_from="/queue",
    )
    assert decided.status_code == 302, decided.get_data(as_text=True)[:2000]
    assert db.scalars(select(Citation)).one().policy_section_version_id == v1.id

    # the public page shows the version in force, and announces the upcoming one
    public = client.get("/policies/usage-1.5").get_data(as_text=True)
    assert v1.text.split("\n")[0][:40] in public and "<strong>strictly</strong>" not in public
    assert f"Version {v2.version} is upcoming, effective {later.isoformat()}" in public
    assert f"upcoming, effective {later.isoformat()}: Stricter wording" in public  # changelog
    pinned = client.get(f"/policies/usage-1.5/v{v2.version}").get_data(as_text=True)
    assert f"upcoming, effective {later.isoformat()}</strong>: not in force yet" in pinned
    listing = client.get("/policies").get_data(as_text=True)
    assert f"version {v2.version} upcoming, effective {later.isoformat()}" in listing
    api = client.get("/api/v1/policies/usage-1.5").json
    assert api["current_version"] == v1.version
    assert [v["upcoming"] for v in api["versions"]][-2:] == [False, True]
    form = editor.get(edit).get_data(as_text=True)
    assert f"Version {v1.version} is in force" in form
    assert f"Version {v2.version} is upcoming, effective {later.isoformat()}" in form

    # from its effective date on, the new version is the one in force
    with time_machine.travel(dt.datetime.combine(later, dt.time(0, 1), dt.UTC), tick=False):
        public = client.get("/policies/usage-1.5").get_data(as_text=True)
        assert "<strong>strictly</strong>" in public and "is upcoming" not in public
        assert client.get("/api/v1/policies/usage-1.5").json["current_version"] == v2.version


def test_a_section_not_in_force_yet_cannot_be_cited(login, db) -> None:
    from reviewapp.policies.services import upsert_policy_section

    later = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    upsert_policy_section(
        db,
        key="usage-9.9",
        number="§9.9",
        title="A future rule",
        text="Not yet.",
        effective_date=later,
    )
    application = ApplicationFactory(submitted=True)
    reviewer = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    post_form(reviewer, f"/review/{application.reference}/claim", token_from="/queue")
    refused = post_form(
        reviewer,
        f"/review/{application.reference}/decide",
        {"outcome": "reject", "template": "reject-prohibited", "citations": ["usage-9.9"]},
        token_from="/queue",
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422, page[:2000]
    assert f"Not in force yet, so it cannot be cited: §9.9 (effective {later.isoformat()})" in page
    assert db.scalars(select(Citation)).all() == []
