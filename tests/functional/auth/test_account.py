"""A signed-in user changes their own password and display name on the account page: the
current password proves it is them, other sessions end, this one continues, the change is
audited and emailed; the navbar's Account menu leads there."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from reviewapp.audit.models import AuditEvent
from reviewapp.auth.models import ApiToken, User
from reviewapp.auth.services import issue_token
from reviewapp.notifications.email import OUTBOX_MEMORY
from tests.conftest import csrf_token, post_form
from tests.factories import PASSWORD, UserFactory

NEW = "a-brand-new-passphrase"


def events(db, action: str, user: User) -> list[AuditEvent]:  # noqa: ANN001
    return list(
        db.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.subject_id == str(user.id))
            .order_by(AuditEvent.id)
        )
    )


def change(client, current: str, new: str = NEW, confirm: str | None = None) -> Any:  # noqa: ANN001
    data = {
        "current_password": current,
        "password": new,
        "confirm": new if confirm is None else confirm,
    }
    return post_form(client, "/account/password", data, token_from="/account")


def log_in(app, email: str, password: str) -> int:  # noqa: ANN001
    client = app.test_client()
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    return response.status_code


def mails_to(email: str) -> list[Any]:
    return [m for m in OUTBOX_MEMORY if m["To"] == email]


def test_the_account_page_has_name_and_password_forms(login) -> None:
    page = login(UserFactory(name="Ada Lovelace")).get("/account").get_data(as_text=True)
    assert 'action="/account/password"' in page and 'action="/account/name"' in page
    for field in ("current_password", "password", "confirm"):
        assert f'name="{field}"' in page
    assert 'autocomplete="current-password"' in page and 'autocomplete="new-password"' in page
    assert 'value="Ada Lovelace"' in page  # the name form shows the current name


def test_changing_the_password_keeps_this_session_and_ends_the_others(app, db, login) -> None:
    OUTBOX_MEMORY.clear()
    user = UserFactory()
    token = issue_token(db, user, name="ci")
    client, elsewhere = login(user), login(user)
    assert elsewhere.get("/account").status_code == 200
    old_cookie = client.get_cookie("session")
    assert old_cookie is not None

    response = change(client, PASSWORD)

    assert response.status_code == 302 and response.location.endswith("/account")
    page = client.get("/account")
    assert page.status_code == 200  # still signed in
    text = page.get_data(as_text=True)
    assert "Your password is changed. Every other session of your account was logged out" in text
    assert "Your 1 API token still works" in text
    assert elsewhere.get("/account").status_code == 302  # the other browser is logged out
    # the session was regenerated: a copy of the cookie from before the change is useless
    copied = app.test_client()
    copied.set_cookie("session", old_cookie.value)
    assert copied.get("/account").status_code == 302
    assert log_in(app, user.email, PASSWORD) == 200  # the old password is refused
    assert log_in(app, user.email, NEW) == 302
    # kept on purpose: a voluntary change is not a take-back (a reset revokes them)
    assert db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).one().revoked_at is None
    assert token

    assert len(events(db, "user.change_password", user)) == 1
    (mail,) = mails_to(user.email)
    assert mail["Subject"] == "Your review app password was changed"
    body = mail.get_content()
    assert "every other session of the account was logged out" in body
    assert "Your 1 API token still works" in body and "/account/tokens" in body
    assert re.search(r"https?://\S+/password-reset\n", body)


def test_a_wrong_current_password_changes_nothing(app, db, login) -> None:
    OUTBOX_MEMORY.clear()
    user = UserFactory()
    client, elsewhere = login(user), login(user)
    response = change(client, "not my password")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = re.search(r'id="current_password-error"[^>]*>([^<]*)<', page)
    assert error and error.group(1) == "This is not your current password."
    assert 'aria-describedby="current_password-error"' in page
    assert elsewhere.get("/account").status_code == 200  # no session ended
    assert log_in(app, user.email, PASSWORD) == 302
    assert events(db, "user.change_password", user) == []
    assert mails_to(user.email) == []


def test_the_new_password_follows_the_sign_up_rules(app, db, login) -> None:
    user = UserFactory()
    client = login(user)
    cases = {
        "mismatch": ((PASSWORD, NEW, NEW + "x"), "confirm", "The passwords differ."),
        "too short": ((PASSWORD, "short", "short"), "password", "Use at least 10 characters."),
        "unchanged": (
            (PASSWORD, PASSWORD, PASSWORD),
            "password",
            "Choose a password different from the current one.",
        ),
        "empty current": (("", NEW, NEW), "current_password", "Enter your current password."),
    }
    for case, ((current, new, confirm), field, message) in cases.items():
        response = change(client, current, new, confirm)
        assert response.status_code == 422, case
        page = response.get_data(as_text=True)
        assert re.search(rf'id="{field}-error"[^>]*>[^<]*{re.escape(message)}', page), case
        assert 'value="' + new not in page  # passwords are never echoed back
    assert log_in(app, user.email, PASSWORD) == 302
    assert events(db, "user.change_password", user) == []


def test_changing_the_name(db, login) -> None:
    user = UserFactory(name="Old Name")
    client = login(user)
    response = post_form(
        client, "/account/name", {"name": "  Grace Hopper  "}, token_from="/account"
    )
    assert response.status_code == 302 and response.location.endswith("/account")
    page = client.get("/account").get_data(as_text=True)
    assert "Your name is saved." in page and 'value="Grace Hopper"' in page
    db.refresh(user)
    assert user.name == "Grace Hopper"
    (event,) = events(db, "user.rename", user)
    assert event.before == {"name": "Old Name"} and event.after == {"name": "Grace Hopper"}


def test_the_name_follows_the_sign_up_rules(db, login) -> None:
    user = UserFactory(name="Kept")
    client = login(user)
    for name, message in [
        ("   ", "Enter your name."),
        ("x" * 201, "200"),  # the limit is named
    ]:
        response = post_form(client, "/account/name", {"name": name}, token_from="/account")
        assert response.status_code == 422, name
        page = response.get_data(as_text=True)
        assert re.search(rf'id="name-error"[^>]*>[^<]*{message}', page), name
    at_limit = post_form(client, "/account/name", {"name": "é" * 200}, token_from="/account")
    assert at_limit.status_code == 302
    db.refresh(user)
    assert user.name == "é" * 200


def test_the_navbar_has_an_account_menu(login) -> None:
    user = UserFactory()
    page = login(user).get("/applications").get_data(as_text=True)
    nav = page[page.index('<nav class="navbar') : page.index("</nav>")]
    assert re.search(r"<summary[^>]*>Account</summary>", nav)
    assert 'href="/account"' in nav and 'href="/account/tokens"' in nav
    assert user.email in nav  # who is signed in stays visible in the menu


def test_keep_me_logged_in_survives_the_change_but_old_remember_cookies_do_not(app, db) -> None:
    user = UserFactory()
    db.flush()
    client = app.test_client()
    token = csrf_token(client, "/login")
    form = {"email": user.email, "password": PASSWORD, "remember": "y", "csrf_token": token}
    assert client.post("/login", data=form).status_code == 302
    old = client.get_cookie("remember_token")
    assert old is not None
    assert change(client, PASSWORD).status_code == 302
    new = client.get_cookie("remember_token")
    assert new is not None and new.value != old.value  # re-issued for the new session epoch
    client.delete_cookie("session")  # the browser was closed: only the remember-me cookie is left
    assert client.get("/account").status_code == 200
    stolen = app.test_client()
    stolen.set_cookie("remember_token", old.value)  # a copy of the cookie from before
    assert stolen.get("/account").status_code == 302
