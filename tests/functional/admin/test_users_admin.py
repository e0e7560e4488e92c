"""Admins manage users: invite with a one-time set-password link, change roles (never the last
admin), deactivate (sessions end, API tokens revoked, claims released) and reactivate; every
change is audited and only admins get in."""

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
from reviewapp.applications.models import Status
from reviewapp.audit.models import AuditEvent, OutboxEvent
from reviewapp.auth.models import ApiToken, Role, User
from reviewapp.auth.services import issue_token
from reviewapp.extensions import db as database
from tests.conftest import csrf_token, post_form
from tests.factories import ApplicationFactory, OrganizationFactory, UserFactory

LINK_RE = re.compile(r'id="link" type="text" readonly value="https?://[^/"]+(/invite/[^"]+)"')
NEW_PASSWORD = "a-brand-new-passphrase"


@pytest.fixture(scope="module")
def app(app: Flask, database_url: str) -> Iterator[Flask]:
    """The session app if create_app registers ``admin_users``, else one that does (the session
    app has served requests, so blueprints can no longer be added to it)."""
    if "admin_users" in app.blueprints:
        yield app
        return
    from reviewapp.admin.users import bp

    application = create_app("testing", DATABASE_URL=database_url, REDIS_URL=None)
    application.register_blueprint(bp)
    application.test_client_class = FlaskLoginClient
    yield application
    database.state(application).engine.dispose()
    database.state(app).engine.dispose()


def staff_admin() -> User:
    return UserFactory(admin=True, organization=OrganizationFactory(name="Trust and safety"))


def events(db, action: str, subject_id: object) -> list[AuditEvent]:  # noqa: ANN001
    return list(
        db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.subject_id == str(subject_id))
            .order_by(AuditEvent.id)
        )
    )


def invite(client, **data: str):  # noqa: ANN001, ANN201
    data.setdefault("organization", "")  # "" = a new organization
    return post_form(client, "/admin/users/invite", data, token_from="/admin/users/invite")


def log_in_through_form(app: Flask, email: str, password: str):  # noqa: ANN201
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    return client, response


# --- list ------------------------------------------------------------------------------------


def test_list_searches_filters_and_pages(login, db) -> None:
    admin = staff_admin()
    acme = OrganizationFactory(name="Acme Robotics")
    UserFactory(email="carol@acme.example", organization=acme)
    UserFactory(email="dave@acme.example", organization=acme, reviewer=True, active=False)
    UserFactory(email="erin@other.example")
    client = login(admin)
    page = client.get("/admin/users?q=ACME").get_data(as_text=True)
    assert "carol@acme.example" in page and "dave@acme.example" in page
    assert "erin@other.example" not in page and "Acme Robotics" in page
    page = client.get(f"/admin/users?organization={acme.id}&active=no").get_data(as_text=True)
    assert "dave@acme.example" in page and "carol@acme.example" not in page
    page = client.get("/admin/users?q=acme&role=reviewer").get_data(as_text=True)
    assert "dave@acme.example" in page and "carol@acme.example" not in page
    # LIKE wildcards are searched literally
    assert "No user matches" in client.get("/admin/users?q=%25_").get_data(as_text=True)
    # a search longer than any email is kept as typed (never cut to a shorter, matching text)
    long_query = "carol@acme.example" + "x" * 300
    page = client.get("/admin/users", query_string={"q": long_query}).get_data(as_text=True)
    assert "No user matches" in page and long_query in page
    # junk filters are ignored, not errors
    assert client.get("/admin/users?role=king&organization=x&active=maybe&page=-3").status_code == (
        200
    )
    for n in range(55):
        UserFactory(email=f"bulk{n:02d}@paged.example")
    first = client.get("/admin/users?q=paged.example").get_data(as_text=True)
    second = client.get("/admin/users?q=paged.example&page=2").get_data(as_text=True)
    assert "bulk00@paged.example" in first and "bulk54@paged.example" not in first
    assert "bulk54@paged.example" in second and "Page 2 of 2" in second


# --- invite and set password -----------------------------------------------------------------


def test_invite_then_set_password_once_and_log_in(app, login, db) -> None:
    admin = staff_admin()
    client = login(admin)
    response = invite(
        client,
        email="  Newbie@Example.com ",
        name="New Bie",
        role="reviewer",
        organization="",
        new_organization="Fresh Org",
        send_email="y",
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    link = LINK_RE.search(page)
    assert link, page
    user = db.scalars(select(User).where(User.email == "newbie@example.com")).one()
    assert user.role == Role.reviewer and user.organization.name == "Fresh Org"
    created = events(db, "user.create", user.id)
    assert created[0].actor_id == admin.id and created[0].after["role"] == "reviewer"
    assert events(db, "organization.create", user.organization_id)
    outbox = db.scalars(select(OutboxEvent).where(OutboxEvent.kind == "invite")).one()
    assert (
        outbox.payload["to"] == ["newbie@example.com"] and link.group(1) in (outbox.payload["body"])
    )
    # the random password is unknown: nobody can log in yet
    _, refused = log_in_through_form(app, "newbie@example.com", NEW_PASSWORD)
    assert refused.status_code == 200 and "Email or password is wrong" in refused.get_data(
        as_text=True
    )

    path = link.group(1)
    anonymous = app.test_client()
    assert "newbie@example.com" in anonymous.get(path).get_data(as_text=True)
    short = post_form(anonymous, path, {"password": "short", "confirm": "short"}, token_from=path)
    assert short.status_code == 422 and "Use at least 10 characters." in short.get_data(
        as_text=True
    )
    done = post_form(
        anonymous, path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, token_from=path
    )
    assert done.status_code == 302 and done.location.endswith("/login")
    assert events(db, "user.set_password", user.id)

    logged_in, response = log_in_through_form(app, "newbie@example.com", NEW_PASSWORD)
    assert response.status_code == 302
    assert logged_in.get("/queue").status_code == 200

    # used once: the link is dead now, for GET and POST
    again = app.test_client()
    assert again.get(path).status_code == 404
    token = csrf_token(again, "/login")
    replay = again.post(
        path,
        data={"password": "another-password!", "confirm": "another-password!", "csrf_token": token},
    )
    assert replay.status_code == 404
    db.expire_all()
    assert user.check_password(NEW_PASSWORD)


def test_invite_link_expires_and_admin_can_issue_a_new_one(app, login, db) -> None:
    admin = staff_admin()
    org = OrganizationFactory(name="Existing Org")
    client = login(admin)
    start = dt.datetime.now(dt.UTC)
    response = invite(client, email="late@example.com", role="developer", organization=str(org.id))
    path = LINK_RE.search(response.get_data(as_text=True)).group(1)
    user = db.scalars(select(User).where(User.email == "late@example.com")).one()
    assert user.organization_id == org.id
    with time_machine.travel(start + dt.timedelta(days=6, hours=23), tick=False):
        assert app.test_client().get(path).status_code == 200
    with time_machine.travel(start + dt.timedelta(days=7, minutes=1), tick=False):
        expired = app.test_client().get(path)
        assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    # a forged or mangled token is simply not found
    assert app.test_client().get(path[:-3] + "xyz").status_code == 404
    assert app.test_client().get("/invite/nonsense").status_code == 404

    fresh = post_form(
        client, f"/admin/users/{user.id}/password-link", token_from=f"/admin/users/{user.id}"
    )
    new_path = LINK_RE.search(fresh.get_data(as_text=True)).group(1)
    assert events(db, "user.password_link", user.id)[0].actor_id == admin.id
    assert app.test_client().get(new_path).status_code == 200


def test_invite_errors_show_next_to_fields(login, db) -> None:
    admin = staff_admin()
    UserFactory(email="taken@example.com")
    client = login(admin)
    taken = invite(client, email="TAKEN@example.com", role="developer", new_organization="X org")
    page = taken.get_data(as_text=True)
    assert taken.status_code == 422
    assert 'id="email-error"' in page and "already registered" in page
    assert 'value="TAKEN@example.com"' in page  # what was typed comes back
    no_org = invite(client, email="who@example.com", role="developer", new_organization=" \u200b ")
    page = no_org.get_data(as_text=True)
    assert no_org.status_code == 422 and 'id="new_organization-error"' in page
    bad_role = invite(client, email="who@example.com", role="emperor", new_organization="Y")
    assert bad_role.status_code == 422 and 'id="role-error"' in bad_role.get_data(as_text=True)
    assert db.scalars(select(User).where(User.email == "who@example.com")).first() is None
    # CSRF is required
    missing = client.post(
        "/admin/users/invite",
        data={"email": "csrf@example.com", "role": "developer", "new_organization": "Z"},
    )
    assert missing.status_code in (400, 422)
    assert db.scalars(select(User).where(User.email == "csrf@example.com")).first() is None


# --- roles -----------------------------------------------------------------------------------


def test_role_change_is_audited_with_before_and_after(login, db) -> None:
    admin = staff_admin()
    user = UserFactory()
    client = login(admin)
    response = post_form(
        client,
        f"/admin/users/{user.id}/role",
        {"role": "senior_reviewer"},
        token_from=f"/admin/users/{user.id}",
        follow_redirects=True,
    )
    assert f"{user.email} is now senior reviewer." in response.get_data(as_text=True)
    db.expire_all()
    assert user.role == Role.senior_reviewer
    (event,) = events(db, "user.role", user.id)
    assert event.actor_id == admin.id
    assert event.before == {"role": "developer"} and event.after == {"role": "senior_reviewer"}
    # shown in the user's history
    assert "user.role" in client.get(f"/admin/users/{user.id}").get_data(as_text=True)


def test_demoting_a_reviewer_releases_their_claims(login, db) -> None:
    admin = staff_admin()
    reviewer = UserFactory(reviewer=True, organization=admin.organization)
    application = ApplicationFactory(submitted=True)
    post_form(login(reviewer), f"/review/{application.reference}/claim", token_from="/queue")
    post_form(
        login(admin),
        f"/admin/users/{reviewer.id}/role",
        {"role": "developer"},
        token_from=f"/admin/users/{reviewer.id}",
    )
    db.expire_all()
    assert application.status == Status.queued and application.claimed_by_id is None


def test_not_your_own_role_and_never_the_last_admin(login, db) -> None:
    from reviewapp.auth.admin_services import change_role, deactivate_user
    from reviewapp.errors import ConflictError

    # start from a known set of admins: only the two made here are active
    for other in db.scalars(select(User).where(User.role == Role.admin)):
        other.active = False
    first = staff_admin()
    second = UserFactory(admin=True, organization=first.organization)
    first_client, second_client = login(first), login(second)

    own = post_form(first_client, f"/admin/users/{first.id}/role", {"role": "developer"})
    assert own.status_code == 422 and "You cannot change your own role" in own.get_data(
        as_text=True
    )

    # two active admins: demoting one is fine
    demoted = post_form(
        second_client,
        f"/admin/users/{first.id}/role",
        {"role": "reviewer"},
        token_from=f"/admin/users/{first.id}",
    )
    assert demoted.status_code == 302
    db.expire_all()
    assert first.role == Role.reviewer
    # the demoted admin's next request is refused (their role is read on every request)
    assert first_client.get("/admin/users").status_code == 403

    # ``second`` is now the last active admin: whoever acts (here the demoted ``first``, as a
    # racing request would), the demotion and the deactivation are refused and nothing changes
    with pytest.raises(ConflictError, match="last active admin") as caught:
        change_role(db, first, second, Role.developer)
    assert caught.value.fields == {"role": "the last active admin keeps this role"}
    with pytest.raises(ConflictError, match="last active admin"):
        deactivate_user(db, first, second)
    db.expire_all()
    assert second.role == Role.admin and second.active
    assert not events(db, "user.role", second.id)


# --- deactivate / reactivate -----------------------------------------------------------------


def test_deactivate_releases_claims_ends_sessions_and_revokes_tokens(app, login, db) -> None:
    admin = staff_admin()
    reviewer = UserFactory(reviewer=True, organization=admin.organization)
    first = ApplicationFactory(submitted=True)
    second = ApplicationFactory(submitted=True)
    reviewer_client = login(reviewer)
    for application in (first, second):
        post_form(reviewer_client, f"/review/{application.reference}/claim", token_from="/queue")
    db.expire_all()
    assert first.status == Status.in_review and first.claimed_by_id == reviewer.id
    headers = {"Authorization": f"Bearer {issue_token(db, reviewer)}"}
    api = app.test_client()
    assert api.get("/api/v1/applications", headers=headers).status_code == 200
    assert reviewer_client.get("/queue").status_code == 200

    response = post_form(
        login(admin),
        f"/admin/users/{reviewer.id}/deactivate",
        {"confirm": "y"},
        token_from=f"/admin/users/{reviewer.id}/deactivate",
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert f"{reviewer.email} is deactivated; 1 API token(s) revoked" in page
    assert first.reference in page and second.reference in page

    db.expire_all()
    assert not reviewer.active
    for application in (first, second):
        assert application.status == Status.queued and application.claimed_by_id is None
        (released,) = events(db, "application.release", application.reference)
        assert released.actor_id == admin.id
        assert released.before["claimed_by_id"] == reviewer.id
    (deactivated,) = events(db, "user.deactivate", reviewer.id)
    assert deactivated.before == {"active": True}
    assert deactivated.after["active"] is False and deactivated.after["tokens_revoked"] == 1
    assert sorted(deactivated.after["claims_released"]) == sorted(
        [first.reference, second.reference]
    )
    token_row = db.scalars(select(ApiToken).where(ApiToken.user_id == reviewer.id)).one()
    assert token_row.revoked_at is not None
    assert events(db, "api_token.revoke", token_row.id)

    # the logged-in reviewer is logged out; the API token no longer works; log-in is refused
    gone = reviewer_client.get("/queue")
    assert gone.status_code == 302 and "/login" in gone.location
    assert api.get("/api/v1/applications", headers=headers).status_code == 401
    _, refused = log_in_through_form(app, reviewer.email, "correct-horse-battery")
    assert refused.status_code == 200

    # reactivate: log-in works again, the token stays revoked
    post_form(
        login(admin),
        f"/admin/users/{reviewer.id}/reactivate",
        token_from=f"/admin/users/{reviewer.id}",
    )
    db.expire_all()
    assert reviewer.active
    assert events(db, "user.reactivate", reviewer.id)[0].after == {"active": True}
    _, accepted = log_in_through_form(app, reviewer.email, "correct-horse-battery")
    assert accepted.status_code == 302
    assert api.get("/api/v1/applications", headers=headers).status_code == 401


def test_cannot_deactivate_yourself(login, db) -> None:
    admin = staff_admin()
    client = login(admin)
    response = post_form(
        client,
        f"/admin/users/{admin.id}/deactivate",
        {"confirm": "y"},
        token_from="/admin/users",
        follow_redirects=True,
    )
    assert "You cannot deactivate your own account" in response.get_data(as_text=True)
    db.expire_all()
    assert admin.active
    assert not events(db, "user.deactivate", admin.id)


def test_deactivate_asks_first_and_says_what_cannot_be_undone(app, login, db) -> None:
    """Deactivate used to act on one click. Now a page says what happens (sessions end, how
    many API tokens are revoked for good, which claims go back), and the POST is refused with
    422 unless its box is ticked; nothing changes until then."""
    admin = staff_admin()
    reviewer = UserFactory(reviewer=True, organization=admin.organization)
    held = ApplicationFactory(submitted=True)
    post_form(login(reviewer), f"/review/{held.reference}/claim", token_from="/queue")
    issue_token(db, reviewer)
    issue_token(db, reviewer)
    client = login(admin)

    user_page = client.get(f"/admin/users/{reviewer.id}").get_data(as_text=True)
    assert f'href="/admin/users/{reviewer.id}/deactivate"' in user_page  # a link, not a form

    page = client.get(f"/admin/users/{reviewer.id}/deactivate")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"Deactivate {reviewer.email}?" in text
    assert "<strong>2</strong> API tokens will be revoked" in text
    assert "This cannot be undone" in text and "logged out" in text
    assert held.reference in text
    assert 'type="checkbox"' in text and 'name="confirm"' in text

    audited = db.scalar(select(func.count()).select_from(AuditEvent))
    unticked = post_form(
        client,
        f"/admin/users/{reviewer.id}/deactivate",
        token_from=f"/admin/users/{reviewer.id}/deactivate",
    )
    assert unticked.status_code == 422
    assert "Tick the box to confirm" in unticked.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == audited
    db.expire_all()
    assert reviewer.active and held.claimed_by_id == reviewer.id
    assert not db.scalars(select(ApiToken).where(ApiToken.revoked_at.is_not(None))).all()
    assert not events(db, "user.deactivate", reviewer.id)

    done = post_form(
        client,
        f"/admin/users/{reviewer.id}/deactivate",
        {"confirm": "y"},
        token_from=f"/admin/users/{reviewer.id}/deactivate",
    )
    assert done.status_code == 302 and done.location.endswith(f"/admin/users/{reviewer.id}")
    db.expire_all()
    assert not reviewer.active and held.claimed_by_id is None
    assert events(db, "user.deactivate", reviewer.id)

    # deactivated already (or yourself): no confirmation page, back with the reason
    again = client.get(f"/admin/users/{reviewer.id}/deactivate", follow_redirects=True)
    assert f"{reviewer.email} is already deactivated." in again.get_data(as_text=True)
    own = client.get(f"/admin/users/{admin.id}/deactivate", follow_redirects=True)
    assert "You cannot deactivate your own account" in own.get_data(as_text=True)


# --- access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["developer", "reviewer", "senior_reviewer"])
def test_non_admins_get_403(login, db, role: str) -> None:
    target = UserFactory()
    user = UserFactory(role=Role(role))
    client = login(user)
    token = csrf_token(client)
    for path in (
        "/admin/users",
        "/admin/users/invite",
        f"/admin/users/{target.id}",
        f"/admin/users/{target.id}/deactivate",
    ):
        assert client.get(path).status_code == 403, path
    for path in (
        "/admin/users/invite",
        f"/admin/users/{target.id}/role",
        f"/admin/users/{target.id}/deactivate",
        f"/admin/users/{target.id}/reactivate",
        f"/admin/users/{target.id}/password-link",
    ):
        response = client.post(path, data={"csrf_token": token, "role": "admin", "confirm": "y"})
        assert response.status_code == 403, path
    db.expire_all()
    assert target.active and target.role == Role.developer


def test_anonymous_goes_to_login_and_unknown_user_is_404(app, login, db) -> None:
    anonymous = app.test_client()
    response = anonymous.get("/admin/users")
    assert response.status_code == 302 and "/login" in response.location
    client = login(staff_admin())
    assert client.get("/admin/users/999999999").status_code == 404
    assert client.get("/admin/users/999999999/deactivate").status_code == 404
    token = csrf_token(client)
    for action in ("role", "deactivate", "reactivate", "password-link"):
        response = client.post(
            f"/admin/users/999999999/{action}",
            data={"csrf_token": token, "role": "admin", "confirm": "y"},
        )
        assert response.status_code == 404, action


def test_a_password_set_from_an_admins_link_revokes_the_accounts_api_tokens(app, login, db) -> None:
    """An admin's set-password link for an existing account replaces its password, like a
    reset: the account's API tokens stop working (each revocation audited)."""
    admin = staff_admin()
    user = UserFactory()
    secret = issue_token(db, user, name="integration")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert app.test_client().get("/api/v1/applications", headers=bearer).status_code == 200
    client = login(admin)
    page = post_form(
        client, f"/admin/users/{user.id}/password-link", token_from=f"/admin/users/{user.id}"
    )
    path = LINK_RE.search(page.get_data(as_text=True)).group(1)
    owner = app.test_client()
    new = "a-brand-new-password"
    done = owner.post(
        path, data={"password": new, "confirm": new, "csrf_token": csrf_token(owner, path)}
    )
    assert done.status_code == 302
    assert app.test_client().get("/api/v1/applications", headers=bearer).status_code == 401
    revoked = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all()
    assert [t.revoked_at is not None for t in revoked] == [True]
    assert len(events(db, "api_token.revoke", revoked[0].id)) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Ansi\x1b[31m\nName", "Name contains the control character U+001B; remove it."),
        (
            "new_organization",
            "\u202eNew org",
            "New organization contains the invisible direction control U+202E; remove it.",
        ),
    ],
)
def test_an_invite_refuses_control_characters_in_names_next_to_the_field(
    login, db, field, value, message
) -> None:
    client = login(staff_admin())
    response = invite(client, email="ctrl@example.com", **{field: value})
    assert response.status_code == 422
    assert (
        f'<div id="{field}-error" class="invalid-feedback d-block">{message}</div>'
        in response.get_data(as_text=True)
    )
    assert db.scalars(select(User).where(User.email == "ctrl@example.com")).first() is None
