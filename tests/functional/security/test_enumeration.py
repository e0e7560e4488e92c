"""No user enumeration: log-in and password-reset answer the same for an unknown email, a wrong
password and a deactivated account (an unknown email still costs an Argon2 verification);
the reset link is single-use, time-limited and bound to the current password; both log-in and
reset requests are throttled."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from argon2 import PasswordHasher

from reviewapp.auth import models as auth_models
from reviewapp.auth.admin_services import make_password_token
from reviewapp.notifications.email import OUTBOX_MEMORY
from tests.conftest import csrf_token
from tests.factories import PASSWORD, UserFactory

_addresses = iter(range(1, 10_000))


def _address() -> dict[str, Any]:
    n = next(_addresses)
    return {"environ_base": {"REMOTE_ADDR": f"10.88.{n // 250}.{n % 250 + 1}"}}


def _normalise(page: str, email: str) -> str:
    page = re.sub(r'value="[^"]*"', 'value=""', page)  # CSRF tokens, the echoed email
    return page.replace(email, "EMAIL")


def _login(client, email: str, password: str) -> Any:  # noqa: ANN001
    token = csrf_token(client, "/login")
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}, **_address()
    )


def _failures(db) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    user = UserFactory()
    inactive = UserFactory(active=False)
    db.flush()
    return {
        "unknown email": ("nobody-here@example.com", PASSWORD),
        "wrong password": (user.email, "wrong-password-123"),
        "deactivated": (inactive.email, PASSWORD),
    }


def test_login_failures_look_the_same(app, db) -> None:
    pages = {}
    for case, (email, password) in _failures(db).items():
        response = _login(app.test_client(), email, password)
        text = response.get_data(as_text=True)
        assert "Email or password is wrong." in text, case
        pages[case] = (response.status_code, _normalise(text, email))
    assert len(set(pages.values())) == 1, {k: v[0] for k, v in pages.items()}


def test_an_unknown_email_costs_an_argon2_verification_too(app, db, monkeypatch) -> None:
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
            calls.append(str(hash)[:9])
            return super().verify(hash, password)

    monkeypatch.setattr(auth_models, "_hasher", CountingHasher())
    for case, (email, password) in _failures(db).items():
        calls.clear()
        _login(app.test_client(), email, password)
        assert calls == ["$argon2id"], case  # exactly one real Argon2id verification


def _request_reset(client, email: str) -> Any:  # noqa: ANN001
    token = csrf_token(client, "/password-reset")
    return client.post("/password-reset", data={"email": email, "csrf_token": token}, **_address())


def test_reset_requests_look_the_same_and_only_real_accounts_get_mail(app, db) -> None:
    answers = {}
    for case, (email, _password) in _failures(db).items():
        OUTBOX_MEMORY.clear()
        client = app.test_client()
        response = _request_reset(client, email)
        assert response.status_code == 302 and response.location.endswith("/login"), case
        page = client.get("/login").get_data(as_text=True)
        assert "If an account uses that email, a password-reset link is on its way" in page
        answers[case] = (response.status_code, response.location, _normalise(page, email))
        sent = [m for m in OUTBOX_MEMORY if m["To"] == email]
        assert len(sent) == (1 if case == "wrong password" else 0), case
    assert len(set(answers.values())) == 1


def _reset_link(email: str) -> str:
    mail = next(m for m in OUTBOX_MEMORY if m["To"] == email)
    match = re.search(r"https?://[^/\s]+(/password-reset/\S+)", mail.get_content())
    assert match, mail.get_content()
    return match.group(1)


def test_reset_link_sets_a_new_password_once_and_ends_other_sessions(app, db, login) -> None:
    user = UserFactory()
    elsewhere = login(user)  # another browser, logged in
    assert elsewhere.get("/account").status_code == 200
    client = app.test_client()
    _request_reset(client, user.email.upper())  # the email is matched case-insensitively
    link = _reset_link(user.email)
    assert client.get(link).status_code == 200
    short = client.post(
        link, data={"password": "short", "confirm": "short", "csrf_token": csrf_token(client, link)}
    )
    assert short.status_code == 422 and "at least 10 characters" in short.get_data(as_text=True)
    new = "a-brand-new-password"
    response = client.post(
        link, data={"password": new, "confirm": new, "csrf_token": csrf_token(client, link)}
    )
    assert response.status_code == 302 and response.location.endswith("/login")
    assert elsewhere.get("/account").status_code == 302  # the other session ended
    assert _login(app.test_client(), user.email, PASSWORD).status_code == 200  # old: refused
    assert _login(app.test_client(), user.email, new).status_code == 302
    used = client.get(link)
    assert used.status_code == 404 and "not valid or was already used" in used.get_data(
        as_text=True
    )


def test_reset_links_expire_and_cannot_be_forged_or_swapped(app, db) -> None:
    user = UserFactory()
    client = app.test_client()
    _request_reset(client, user.email)
    link = _reset_link(user.email)
    age = int(app.config["PASSWORD_RESET_MAX_AGE_SECONDS"])
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=age + 60)):
        expired = app.test_client().get(link)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    assert app.test_client().get(link[:-3] + "abc").status_code == 404  # tampered
    # an invite (set-password) token is not a reset token, nor the other way round
    invite = make_password_token(user, app.config["SECRET_KEY"])
    assert app.test_client().get(f"/password-reset/{invite}").status_code == 404
    assert app.test_client().get(link.replace("/password-reset/", "/invite/")).status_code == 404


def test_a_password_change_voids_earlier_reset_links(app, db) -> None:
    user = UserFactory()
    client = app.test_client()
    _request_reset(client, user.email)
    first = _reset_link(user.email)
    user.set_password("changed-some-other-way")
    db.flush()
    assert app.test_client().get(first).status_code == 404


@pytest.mark.parametrize("case", ["per address", "per account"])
def test_reset_requests_are_throttled(make_app, db, case: str) -> None:
    limited = make_app(
        RATELIMIT_LOGIN="3 per minute", RATELIMIT_PASSWORD_RESET_ACCOUNT="2 per hour"
    )
    user = UserFactory()
    client = limited.test_client()
    fixed = {"environ_base": {"REMOTE_ADDR": "10.99.0.1"}}
    for n in range(4):
        if case == "per address":
            email = f"someone{n}@example.com"
            kwargs = fixed
        else:
            email = user.email
            kwargs = {"environ_base": {"REMOTE_ADDR": f"10.99.1.{n + 1}"}}
        token = csrf_token(client, "/password-reset")
        response = client.post(
            "/password-reset", data={"email": email, "csrf_token": token}, **kwargs
        )
        allowed = 3 if case == "per address" else 2
        assert response.status_code == (302 if n < allowed else 429), (n, response.status_code)


def test_reset_and_invitation_links_use_the_configured_address_not_the_host_header(
    app, db, login
) -> None:
    """A reset link built from the request's Host (or X-Forwarded-Host) would hand the token to
    whatever host the requester names; emailed links use BASE_URL."""
    base = app.config["BASE_URL"].rstrip("/")
    user = UserFactory()
    OUTBOX_MEMORY.clear()
    from tests.conftest import _CSRF_RE

    client = app.test_client()
    evil = {"base_url": "http://evil.example", "headers": {"X-Forwarded-Host": "evil.example"}}
    form = client.get("/password-reset", **evil).get_data(as_text=True)
    token = next(t for t in _CSRF_RE.search(form).groups() if t)
    sent = client.post(
        "/password-reset", data={"email": user.email, "csrf_token": token}, **evil, **_address()
    )
    assert sent.status_code == 302
    body = next(m for m in OUTBOX_MEMORY if m["To"] == user.email).get_content()
    assert "evil.example" not in body
    assert f"{base}/password-reset/" in body
    from reviewapp.admin.users import _link

    with app.test_request_context("/admin/users/invite", base_url="http://evil.example"):
        assert _link("a-token").startswith(f"{base}/invite/")


def test_a_password_reset_revokes_the_accounts_api_tokens(app, db) -> None:
    """Whoever had the account may have made API tokens: after the owner takes it back with a
    reset link they stop working, the owner is told how many were revoked, and each is audited."""
    from sqlalchemy import select

    from reviewapp.audit.models import AuditEvent
    from reviewapp.auth.services import issue_token

    user = UserFactory()
    tokens = [issue_token(db, user, name=f"t{n}") for n in range(2)]
    bearer = {"Authorization": f"Bearer {tokens[0]}"}
    assert app.test_client().get("/api/v1/applications", headers=bearer).status_code == 200
    client = app.test_client()
    _request_reset(client, user.email)
    link = _reset_link(user.email)
    new = "a-brand-new-password"
    client.post(
        link, data={"password": new, "confirm": new, "csrf_token": csrf_token(client, link)}
    )
    page = client.get("/login").get_data(as_text=True)
    assert "Your 2 API tokens were revoked" in page
    for token in tokens:
        refused = app.test_client().get(
            "/api/v1/applications", headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 401
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "api_token.revoke")).all()
    assert len(events) == 2 and {e.after["reason"] for e in events} == {"password reset"}
