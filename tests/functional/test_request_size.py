"""A request body over MAX_CONTENT_LENGTH gets 413: an HTML page for browser routes, a JSON
error under /api/, never a stack trace. There is no file-upload route (imports are CLI
commands); a multipart body is refused the same way."""

from __future__ import annotations

import pytest

from reviewapp.auth.services import issue_token
from tests.conftest import csrf_token
from tests.factories import UserFactory


def _limit(app) -> int:
    return int(app.config["MAX_CONTENT_LENGTH"])


def _assert_html_413(response, app) -> None:
    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert "Too large" in page
    assert f"larger than the limit of {_limit(app)} bytes" in page
    assert "Traceback" not in page and "werkzeug" not in page.lower()


@pytest.mark.parametrize("path", ["/applications/new", "/login", "/register"])
def test_browser_form_post_over_the_limit_gets_an_html_413(app, login, db, path) -> None:
    client = login(UserFactory(reviewer=True))
    token = csrf_token(client, "/applications")
    body = {"csrf_token": token, "title": "x" * (_limit(app) + 1)}
    _assert_html_413(client.post(path, data=body), app)


def test_a_multipart_upload_over_the_limit_gets_an_html_413(app, login, db) -> None:
    client = login(UserFactory())
    token = csrf_token(client, "/applications")
    # built by hand: the test client would spool a large multipart body to a temporary file
    # that stays open when the app refuses the request unread
    boundary = "reviewapp-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + b"a,b\n" * (_limit(app) // 4 + 1)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/applications/new",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    _assert_html_413(response, app)


def test_a_form_just_under_the_limit_is_not_refused_for_size(app, login, db) -> None:
    client = login(UserFactory())
    token = csrf_token(client, "/applications/new")
    prefix = f"csrf_token={token}&save=1&title=t&description="
    body = prefix + "d" * (_limit(app) - len(prefix))
    assert len(body) == _limit(app)
    response = client.post(
        "/applications/new",
        data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code != 413
    assert "Description is" in response.get_data(as_text=True)  # the field's own limit speaks


def test_api_body_over_the_limit_gets_a_json_413(app, client, db) -> None:
    secret = issue_token(db, UserFactory())
    big = b'{"title": "' + b"x" * _limit(app) + b'"}'
    response = client.post(
        "/api/v1/applications",
        data=big,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    assert response.json == {
        "error": {
            "code": "payload_too_large",
            "message": f"The request body is larger than the limit of {_limit(app)} bytes.",
            "fields": {},
        }
    }


def test_a_nul_character_in_a_form_is_refused_naming_the_field_and_nothing_is_stored(
    app, db
) -> None:
    """PostgreSQL text cannot hold U+0000: a form holding it gets a 400 page naming the field,
    not a database error, and no account is created."""
    from sqlalchemy import func, select

    from reviewapp.auth.models import User
    from tests.conftest import csrf_token

    client = app.test_client()
    before = db.scalar(select(func.count()).select_from(User))
    response = client.post(
        "/register",
        data={
            "name": "Nul\x00Name",
            "email": "nul-name@example.com",
            "organization": "Nul Org",
            "password": "a-long-enough-password",
            "confirm": "a-long-enough-password",
            "csrf_token": csrf_token(client, "/register"),
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "NUL character" in page and "name" in page and "Traceback" not in page
    assert db.scalar(select(func.count()).select_from(User)) == before


def test_requests_refused_before_the_view_still_carry_their_request_id(app) -> None:
    """A POST refused by the CSRF check echoes the client's X-Request-ID."""
    response = app.test_client().post(
        "/applications/new", data={"title": "x"}, headers={"X-Request-ID": "trace-abc-123"}
    )
    assert response.status_code in {400, 302}
    assert response.headers["X-Request-ID"] == "trace-abc-123"
