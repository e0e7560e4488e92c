"""Developer flows through the browser routes (test client, CSRF on, real database)."""

from __future__ import annotations

from sqlalchemy import func, select

from reviewapp.applications.models import Application, Revision, Status
from reviewapp.audit.models import AuditEvent
from reviewapp.auth.models import Organization, User
from reviewapp.triage.models import TriageResult
from tests.conftest import csrf_token, post_form
from tests.factories import PASSWORD, ApplicationFactory, OrganizationFactory, UserFactory

FORM = {
    "title": "Homework helper",
    "category": "assistant_chatbot",
    "description": "Explains maths homework step by step.",
    "benefits": "Pupils learn at their own pace.",
    "end_users": ["consumers", "minors"],
    "domains": ["education"],
    "modalities": ["text"],
    "monthly_requests": "20000",
    "human_review_of_outputs": "no",
    "safety_measures": "Input and output moderation.",
    "product_url": "https://example.com/homework",
}


def test_login_through_the_real_form_and_logout_is_post_only(client, db) -> None:
    user = UserFactory(email="dana@example.com")
    page = client.get("/login")
    assert page.status_code == 200
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": "DANA@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    assert client.get("/applications").status_code == 200
    assert client.get("/logout").status_code == 405
    assert (
        client.post("/logout", data={}).status_code == 400
    )  # no CSRF token: refused, still logged in
    assert client.get("/applications").status_code == 200
    response = post_form(client, "/logout", token_from="/applications")
    assert response.status_code == 302
    assert client.get("/applications").status_code == 302  # back to the login page
    assert (
        db.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "user.login", AuditEvent.actor_id == user.id)
        )
        == 1
    )


def test_wrong_password_and_unknown_email_get_the_same_answer(client, db) -> None:
    UserFactory(email="known@example.com")
    token = csrf_token(client, "/login")
    a = client.post(
        "/login",
        data={"email": "known@example.com", "password": "nope-nope-nope", "csrf_token": token},
    )
    b = client.post(
        "/login",
        data={"email": "ghost@example.com", "password": "nope-nope-nope", "csrf_token": token},
    )
    assert a.status_code == b.status_code == 200
    assert b"Email or password is wrong." in a.data and b"Email or password is wrong." in b.data


def test_login_next_only_follows_local_paths(client, db) -> None:
    UserFactory(email="next@example.com")
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?next=//evil.example/x",
        data={"email": "next@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert response.location == "/"


def test_register_creates_an_organization_and_joining_needs_its_code(client, db) -> None:
    token = csrf_token(client, "/register")
    data = {
        "name": "Ada",
        "email": "ada@example.com",
        "password": "long-enough-pw",
        "confirm": "long-enough-pw",
        "organization": "Acme AI",
        "csrf_token": token,
    }
    assert client.post("/register", data=data).status_code == 302
    org = db.scalars(select(Organization).where(Organization.name == "Acme AI")).one()
    post_form(client, "/logout", token_from="/applications")

    token = csrf_token(client, "/register")
    intruder = {**data, "email": "eve@example.com", "csrf_token": token}
    response = client.post("/register", data=intruder)
    assert response.status_code == 422
    assert b"Ask a member for its join code" in response.data
    assert b'value="eve@example.com"' in response.data  # what was typed is kept
    assert (
        db.scalar(select(func.count()).select_from(User).where(User.email == "eve@example.com"))
        == 0
    )

    response = client.post("/register", data={**intruder, "join_code": org.join_code})
    assert response.status_code == 302
    eve = db.scalars(select(User).where(User.email == "eve@example.com")).one()
    assert eve.organization_id == org.id


def test_draft_edit_submit_triage_and_view(login, db) -> None:
    dev = UserFactory()
    client = login(dev)
    response = post_form(
        client, "/applications/new", {**FORM, "save": "Save draft"}, token_from="/applications/new"
    )
    assert response.status_code == 302
    application = db.scalars(
        select(Application).where(Application.organization_id == dev.organization_id)
    ).one()
    assert application.status == Status.draft and application.current_revision_id is None

    edited = {**FORM, "title": "Homework helper v2", "submit_application": "Submit for review"}
    response = post_form(
        client,
        f"/applications/{application.reference}/edit",
        edited,
        token_from=f"/applications/{application.reference}/edit",
    )
    assert response.status_code == 302
    db.expire_all()
    assert application.status == Status.queued
    assert application.risk_tier in ("high", "prohibited")  # minors + education
    revision = db.scalars(select(Revision).where(Revision.application_id == application.id)).one()
    assert revision.content["title"] == "Homework helper v2"
    result = db.scalars(select(TriageResult).where(TriageResult.revision_id == revision.id)).one()
    assert any(f["key"] for f in result.fired)

    page = client.get(f"/applications/{application.reference}").get_data(as_text=True)
    assert "Homework helper v2" in page and "queued" in page
    listing = client.get("/applications").get_data(as_text=True)
    assert application.reference in listing


def test_submit_incomplete_draft_shows_errors_next_to_fields_and_keeps_input(login, db) -> None:
    client = login(UserFactory())
    response = post_form(
        client,
        "/applications/new",
        {"title": "Half done", "description": "Ünïcödé 🚀 text", "submit_application": "1"},
        token_from="/applications/new",
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Use-case category is required to submit." in page
    assert 'value="Half done"' in page and "Ünïcödé 🚀 text" in page
    assert db.scalar(select(func.count()).select_from(Application)) == 0


def test_too_long_title_is_refused_with_the_limit(login, db) -> None:
    client = login(UserFactory())
    response = post_form(
        client,
        "/applications/new",
        {**FORM, "title": "x" * 201, "save": "1"},
        token_from="/applications/new",
    )
    assert response.status_code == 422
    assert b"Title is 201 characters long; the limit is 200." in response.data
    assert b'value="' + b"x" * 201 + b'"' in response.data


def test_nobody_sees_another_organizations_application(login, db) -> None:
    theirs = ApplicationFactory(submitted=True)
    client = login(UserFactory())
    assert client.get(f"/applications/{theirs.reference}").status_code == 404
    assert client.get(f"/applications/{theirs.reference}/edit").status_code == 404
    assert client.get(f"/applications/{theirs.reference}/withdraw").status_code == 404
    withdraw = post_form(client, f"/applications/{theirs.reference}/withdraw", {"confirm": "y"})
    assert withdraw.status_code == 404
    assert theirs.reference not in client.get("/applications").get_data(as_text=True)


def test_withdraw_asks_first_and_says_it_cannot_be_undone(login, db) -> None:
    """Withdraw used to act on one click. Now the button leads to a page that says what
    happens, and the POST is refused with 422 unless its box is ticked; nothing changes until
    then."""
    application = ApplicationFactory(submitted=True)
    client = login(application.submitter)
    ref = application.reference
    detail = client.get(f"/applications/{ref}").get_data(as_text=True)
    assert f'href="/applications/{ref}/withdraw"' in detail  # a link, not a one-click form

    page = client.get(f"/applications/{ref}/withdraw")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"Withdraw {ref}" in text and "This cannot be undone" in text
    assert "cannot be edited, resubmitted or appealed" in text
    assert "leaves the review queue" in text
    assert 'type="checkbox"' in text and 'name="confirm"' in text

    audited = db.scalar(select(func.count()).select_from(AuditEvent))
    unticked = post_form(client, f"/applications/{ref}/withdraw")
    assert unticked.status_code == 422
    assert "Tick the box to confirm" in unticked.get_data(as_text=True)
    db.expire_all()
    assert application.status == Status.queued
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == audited

    done = post_form(client, f"/applications/{ref}/withdraw", {"confirm": "y"})
    assert done.status_code == 302 and done.location.endswith(f"/applications/{ref}")
    db.expire_all()
    assert application.status == Status.withdrawn

    # withdrawn already: no confirmation page, back to the application with the reason
    again = client.get(f"/applications/{ref}/withdraw", follow_redirects=True)
    assert "cannot be withdrawn" in again.get_data(as_text=True)
    assert 'name="confirm"' not in again.get_data(as_text=True)


def test_staff_cannot_withdraw_and_get_no_confirmation_page(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory())
    client = login(reviewer)
    for answer in (
        client.get(f"/applications/{application.reference}/withdraw"),
        post_form(client, f"/applications/{application.reference}/withdraw", {"confirm": "y"}),
    ):
        assert answer.status_code == 302
    db.expire_all()
    assert application.status == Status.queued


def test_colleague_sees_and_withdraws(login, db) -> None:
    application = ApplicationFactory(submitted=True)
    colleague = UserFactory(organization=application.submitter.organization)
    client = login(colleague)
    assert client.get(f"/applications/{application.reference}").status_code == 200
    withdrawn = post_form(
        client, f"/applications/{application.reference}/withdraw", {"confirm": "y"}
    )
    assert withdrawn.status_code == 302
    db.expire_all()
    assert application.status == Status.withdrawn
    actions = db.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.subject_id == application.reference)
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "application.submit",
        "application.withdraw",
    ]  # the factory files drafts directly
