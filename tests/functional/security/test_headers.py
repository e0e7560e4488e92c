"""Production headers and cookies: CSP, HSTS, framing, nosniff, Referrer-Policy on every kind
of response; session and remember-me cookies Secure, HttpOnly, SameSite=Lax."""

from __future__ import annotations

import re

import pytest

from tests.conftest import _csrf_from
from tests.factories import PASSWORD, UserFactory

SECRET = "production-test-secret-" + "x" * 32
HTTPS = {"base_url": "https://reviewapp.example"}

# one of each kind of response: a page, a form, a public page, a redirect, an error page,
# a JSON API answer, a static file
PATHS = ["/", "/login", "/policies", "/applications", "/no-such-page", "/api/v1/vocabularies"]
PATHS += ["/static/app.css"]


@pytest.fixture()
def production(make_app):  # noqa: ANN001, ANN201
    return make_app("production", SECRET_KEY=SECRET, MAIL_BACKEND="memory")


def _directives(csp: str) -> dict[str, str]:
    return {
        part.strip().split(" ", 1)[0]: (part.strip().split(" ", 1) + [""])[1]
        for part in csp.split(";")
        if part.strip()
    }


@pytest.mark.parametrize("path", PATHS)
def test_security_headers_on_every_kind_of_response(production, path: str) -> None:
    response = production.test_client().get(path, **HTTPS)
    response.close()  # static files are streamed
    headers = response.headers
    csp = _directives(headers["Content-Security-Policy"])
    assert csp["default-src"] == "'self'"
    assert "'unsafe-inline'" not in csp.get("script-src", "") and "'unsafe-eval'" not in str(csp)
    assert csp["object-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert csp["base-uri"] == "'self'" and csp["form-action"] == "'self'"
    hsts = headers["Strict-Transport-Security"]
    max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))  # type: ignore[union-attr]
    assert max_age >= 365 * 24 * 3600 and "includeSubDomains" in hsts
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in (
        "same-origin",
        "strict-origin-when-cross-origin",
        "no-referrer",
    )


def test_plain_http_is_sent_to_https(production) -> None:  # noqa: ANN001
    response = production.test_client().get("/login", base_url="http://reviewapp.example")
    assert response.status_code in (301, 302, 308)
    assert response.location.startswith("https://reviewapp.example/login")


def _cookie_attributes(response, name: str) -> set[str]:  # noqa: ANN001
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "="))
    return {
        part.strip().split("=", 1)[0].lower()
        + (
            "=" + part.strip().split("=", 1)[1].lower()
            if part.strip().lower().startswith("samesite")
            else ""
        )
        for part in header.split(";")[1:]
    }


def test_session_and_remember_cookies_are_secure_httponly_lax(production, db) -> None:  # noqa: ANN001
    user = UserFactory()
    client = production.test_client()
    page = client.get("/login", **HTTPS)
    assert {"secure", "httponly", "samesite=lax"} <= _cookie_attributes(page, "session")
    token = _csrf_from(page.get_data(as_text=True), "/login")
    response = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "remember": "y", "csrf_token": token},
        headers={"Referer": "https://reviewapp.example/login"},  # CSRF checks it over HTTPS
        **HTTPS,
    )
    assert response.status_code == 302
    for name in ("session", "remember_token"):
        assert {"secure", "httponly", "samesite=lax"} <= _cookie_attributes(response, name), name
