"""Sessions: log-in starts a fresh session; log-out is POST + CSRF only, ends the session and
the remember-me cookie, and old cookies replayed afterwards authenticate nobody; ``next=``
(and ``return_to=``) only ever redirect to a path on this site."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import csrf_token
from tests.factories import PASSWORD, ApplicationFactory, OrganizationFactory, UserFactory

_addresses = itertools.count(1)


def fresh_address() -> dict[str, Any]:
    """A client address of its own, so the per-address log-in limit never trips these tests."""
    n = next(_addresses)
    return {"environ_base": {"REMOTE_ADDR": f"10.77.{n // 250}.{n % 250 + 1}"}}


def login_form(client, user, *, remember: bool = False, next_: str | None = None) -> Any:  # noqa: ANN001
    address = fresh_address()
    token = csrf_token(client, "/login")
    data = {"email": user.email, "password": PASSWORD, "csrf_token": token}
    if remember:
        data["remember"] = "y"
    return client.post(
        "/login", data=data, query_string={"next": next_} if next_ is not None else None, **address
    )


def is_logged_in(client) -> bool:  # noqa: ANN001
    return client.get("/account").status_code == 200


def test_login_does_not_carry_the_earlier_session_over(app, db) -> None:
    user = UserFactory()
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as sess:  # planted by an attacker before log-in
        sess["planted"] = "fixation"
        before_token = sess.get("csrf_token")
    assert login_form(client, user).status_code == 302
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.get("csrf_token") in (None,) or sess.get("csrf_token") != before_token
        assert sess.get("_user_id")
    assert is_logged_in(client)


def test_logout_by_get_is_405_and_keeps_the_session(app, db, login) -> None:
    client = login(UserFactory())
    assert client.get("/logout").status_code == 405
    assert is_logged_in(client)


@pytest.mark.parametrize("token", [None, "", "not-a-token", "IjAwMDAi.aaaa.bbbb"])
def test_logout_without_a_valid_csrf_token_is_refused(app, db, login, token) -> None:  # noqa: ANN001
    client = login(UserFactory())
    data = {} if token is None else {"csrf_token": token}
    response = client.post("/logout", data=data)
    assert response.status_code == 400
    assert "nothing was saved" in response.get_data(as_text=True)
    assert is_logged_in(client)


def test_logout_clears_session_and_remember_cookie_and_old_cookies_stop_working(app, db) -> None:
    user = UserFactory()
    client = app.test_client()
    assert login_form(client, user, remember=True).status_code == 302
    old_session = client.get_cookie("session")
    old_remember = client.get_cookie("remember_token")
    assert old_session is not None and old_remember is not None
    assert is_logged_in(client)

    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/policies")})
    assert response.status_code == 302 and response.location.endswith("/login")
    cleared = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("remember_token=")]
    assert cleared and ("Expires=Thu, 01 Jan 1970" in cleared[0] or "Max-Age=0" in cleared[0])
    assert client.get_cookie("remember_token") is None
    assert not is_logged_in(client)
    with client.session_transaction() as sess:
        assert "_user_id" not in sess

    # a copy of the old cookies (stolen, or a shared computer) authenticates nobody
    for cookies in (
        {"session": old_session.value},
        {"remember_token": old_remember.value},
        {"session": old_session.value, "remember_token": old_remember.value},
    ):
        replay = app.test_client()
        for name, value in cookies.items():
            replay.set_cookie(name, value)
        assert not is_logged_in(replay), cookies


# every form of an off-site target we know of; each must fall back to the start page
OFF_SITE = [
    "//evil.com",
    "///evil.com",
    "////evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "\\/evil.com",
    "/\\/evil.com",
    "https://evil.com",
    "http://evil.com/applications",
    "HTTPS://EVIL.COM",
    "http:evil.com",
    "http:/evil.com",
    "https:\\\\evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    " //evil.com",
    "\t//evil.com",
    "\n//evil.com",
    "\x00//evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    "\x0b//evil.com",
    "/%2F/evil.com",
    "/%2f%2fevil.com",
    "%2F%2Fevil.com",
    "/%5Cevil.com",
    "/%5c%5cevil.com",
    "/%09/evil.com",
    "/%252F%252Fevil.com",
    "//localhost@evil.com",
    "https://localhost@evil.com",
    "/\\localhost@evil.com",
    "//evil.com\\@localhost",
    "//evil.com%2F@localhost",
    "/.//evil.com",
    "/..//evil.com",
    "\uff0f\uff0fevil.com",  # fullwidth solidus
    "/\u2215evil.com",  # division slash
    "/\u3000/evil.com",  # ideographic space
    "/\u200b/evil.com",  # zero-width space
    "/\u2028/evil.com",  # line separator
    "//ｅｖｉｌ.com",  # fullwidth host letters
    "//evil.com#/applications",
    "evil.com",
    "applications",
]

SAME_SITE = ["/applications", "/applications?page=2", "/policies/usage-1.1#text"]


def _assert_on_our_host(location: str, expected: str) -> None:
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost"), location
    assert location == expected or location == f"http://localhost{expected}", location


@pytest.mark.parametrize("target", OFF_SITE, ids=[repr(t) for t in OFF_SITE])
def test_login_next_never_leaves_the_site(app, db, target: str) -> None:
    response = login_form(app.test_client(), UserFactory(), next_=target)
    assert response.status_code == 302
    _assert_on_our_host(response.location, "/")


@pytest.mark.parametrize("target", SAME_SITE)
def test_login_next_follows_paths_on_this_site(app, db, target: str) -> None:
    response = login_form(app.test_client(), UserFactory(), next_=target)
    assert response.status_code == 302
    _assert_on_our_host(response.location, target)


def _reassign(db, login) -> tuple[Any, str, dict[str, str]]:  # noqa: ANN001
    client = login(UserFactory(admin=True, organization=OrganizationFactory()))
    application = ApplicationFactory(submitted=True)
    return client, f"/admin/claims/{application.reference}/reassign", {"reviewer_id": ""}


def _release(db, login) -> tuple[Any, str, dict[str, str]]:  # noqa: ANN001
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    application = ApplicationFactory(submitted=True)
    return client, f"/review/{application.reference}/release", {}


def _bulk(db, login) -> tuple[Any, str, dict[str, str]]:  # noqa: ANN001
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    return client, "/queue/bulk", {"outcome": ""}  # refused: it goes back to return_to


def _claim_next(db, login) -> tuple[Any, str, dict[str, str]]:  # noqa: ANN001
    client = login(UserFactory(reviewer=True, organization=OrganizationFactory()))
    return client, "/queue/claim-next", {}  # nothing to claim: it goes back to return_to


# views that redirect to a form-given ``return_to`` -> (setup, fallback when refused)
RETURN_TO_VIEWS = {
    "admin reassign": (_reassign, "/admin/claims"),
    "review release": (_release, "/queue"),
    "queue bulk": (_bulk, "/queue"),
    "queue claim-next": (_claim_next, "/queue"),
}


@pytest.mark.parametrize("view", sorted(RETURN_TO_VIEWS))
@pytest.mark.parametrize("target", OFF_SITE, ids=[repr(t) for t in OFF_SITE])
def test_return_to_never_leaves_the_site(app, db, login, view: str, target: str) -> None:
    setup, fallback = RETURN_TO_VIEWS[view]
    client, path, data = setup(db, login)
    response = client.post(
        path, data={**data, "csrf_token": csrf_token(client), "return_to": target}
    )
    if "\x00" in target:  # a posted NUL is refused before any view runs (400, no redirect)
        assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
        return
    assert response.status_code == 302
    _assert_on_our_host(response.location, fallback)


@pytest.mark.parametrize("view", sorted(RETURN_TO_VIEWS))
def test_return_to_follows_a_path_on_this_site(app, db, login, view: str) -> None:
    setup, _fallback = RETURN_TO_VIEWS[view]
    client, path, data = setup(db, login)
    response = client.post(
        path, data={**data, "csrf_token": csrf_token(client), "return_to": "/queue?view=mine"}
    )
    _assert_on_our_host(response.location, "/queue?view=mine")


def test_every_view_reading_next_is_tested() -> None:
    """The views that redirect to a client-given target (they call is_safe_next) are the ones
    tested above: a new one must be added here."""
    from pathlib import Path

    import reviewapp

    root = Path(reviewapp.__file__).parent
    users = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "is_safe_next(" in p.read_text() and p.name != "web.py"
    )
    calls = sum((root / u).read_text().count("is_safe_next(") for u in users)
    assert users == ["admin/views.py", "auth/views.py", "review/views.py"], users
    assert calls == 1 + len(RETURN_TO_VIEWS), "a new next=/return_to= view: test it here"
