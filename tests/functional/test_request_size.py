"""A request body over MAX_CONTENT_LENGTH gets 413: an HTML page for browser routes, a JSON
error under /api/, never a stack trace. There is no file-upload route (imports are CLI
commands); a multipart body is refused the same way. A body sent in chunks (no Content-Length)
gets the same answers and is never cut at the limit and used: through the test client, and as
real chunked requests to werkzeug's server and to gunicorn."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from reviewapp import ROOT
from reviewapp.applications.models import Application
from reviewapp.auth.models import User
from reviewapp.auth.services import issue_token
from tests.conftest import _csrf_from, csrf_token
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


BOUNDARY = "reviewapp-test-boundary"


def _multipart_over_the_limit(app, token: str) -> bytes:
    """A multipart upload (the CSRF token and a CSV file) one line over the body limit, built
    by hand: the test client would spool a large multipart body to a temporary file that stays
    open when the app refuses the request unread."""
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + b"a,b\n" * (_limit(app) // 4 + 1)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_multipart_upload_over_the_limit_gets_an_html_413(app, login, db, chunked) -> None:
    client = login(UserFactory())
    response = client.post(
        "/applications/new",
        data=_multipart_over_the_limit(app, csrf_token(client, "/applications")),
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        **(_as_chunked() if chunked else {}),
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


# --- bodies sent with Transfer-Encoding: chunked (no Content-Length) ---------------------------
#
# A server that de-chunks a request hands the app the body without CONTENT_LENGTH and with
# ``wsgi.input_terminated`` set (gunicorn always, werkzeug's server for chunked requests). The
# test client does no chunk framing; these helpers give the app what such a server gives it.
# The tests further down send real chunked requests to real servers.


def _as_chunked(headers: dict[str, str] | None = None) -> dict:
    """Test-client arguments for a request as a server passes on a de-chunked body."""
    return {
        "headers": {**(headers or {}), "Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }


def _count(db, model) -> int:
    return int(db.scalar(select(func.count()).select_from(model)))


def _json_of_size(size: int) -> bytes:
    """A valid application JSON object padded with trailing blanks to exactly ``size`` bytes:
    only its size can be wrong (cut anywhere in the padding, it is still valid)."""
    body = b'{"title": "Chunked upload", "description": "Sent in chunks."}'
    return body + b" " * (size - len(body))


def _registration_of_size(token: str, email: str, size: int) -> bytes:
    """A valid sign-up form (urlencoded) whose last field pads it to exactly ``size`` bytes."""
    fields = urlencode(
        {
            "csrf_token": token,
            "name": "Chunky Developer",
            "email": email,
            "organization": "Chunked Org",
            "password": "a-long-enough-password",
            "confirm": "a-long-enough-password",
        }
    ).encode()
    prefix = fields + b"&padding="
    return prefix + b"p" * (size - len(prefix))


def _assert_json_413(status: int, mimetype: str, body: dict, app) -> None:
    assert status == 413
    assert mimetype == "application/json"
    assert body == {
        "error": {
            "code": "payload_too_large",
            "message": f"The request body is larger than the limit of {_limit(app)} bytes.",
            "fields": {},
        }
    }


@pytest.mark.parametrize("cut_at_the_limit", ["still_valid_json", "malformed_json"])
def test_a_chunked_api_body_over_the_limit_gets_a_json_413_and_creates_nothing(
    app, client, db, cut_at_the_limit
) -> None:
    """Cut at the limit, the first body is still a valid object (it used to be created), the
    second is malformed JSON (it used to get 400): both are too large, nothing else."""
    secret = issue_token(db, UserFactory())
    before = _count(db, Application)
    if cut_at_the_limit == "still_valid_json":
        body = _json_of_size(_limit(app) + 1)
    else:
        body = b'{"title": "' + b"x" * _limit(app) + b'"}'
    response = client.post(
        "/api/v1/applications",
        data=body,
        **_as_chunked({"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}),
    )
    _assert_json_413(response.status_code, response.mimetype, response.json, app)
    assert _count(db, Application) == before


def test_a_chunked_api_body_of_exactly_the_limit_is_accepted(app, client, db) -> None:
    secret = issue_token(db, UserFactory())
    before = _count(db, Application)
    response = client.post(
        "/api/v1/applications",
        data=_json_of_size(_limit(app)),
        **_as_chunked({"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}),
    )
    assert response.status_code == 201, response.get_data(as_text=True)[:300]
    assert response.json["title"] == "Chunked upload"
    assert _count(db, Application) == before + 1


def test_a_chunked_form_over_the_limit_gets_an_html_413_and_saves_nothing(app, db) -> None:
    """Its first MAX_CONTENT_LENGTH bytes are a complete, valid sign-up: the body must be
    refused as a whole, not cut at the limit and saved."""
    client = app.test_client()
    email = "chunky@example.com"
    body = _registration_of_size(csrf_token(client, "/register"), email, _limit(app) + 1)
    response = client.post(
        "/register",
        data=body,
        content_type="application/x-www-form-urlencoded",
        **_as_chunked(),
    )
    _assert_html_413(response, app)
    assert db.scalar(select(User).where(User.email == email)) is None


def test_a_chunked_form_of_exactly_the_limit_is_not_refused_for_size(app, db) -> None:
    client = app.test_client()
    email = "chunky-exact@example.com"
    body = _registration_of_size(csrf_token(client, "/register"), email, _limit(app))
    response = client.post(
        "/register",
        data=body,
        content_type="application/x-www-form-urlencoded",
        **_as_chunked(),
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert db.scalar(select(User).where(User.email == email)) is not None


# --- real chunked requests to real servers ------------------------------------------------------


def _post_chunked(
    port: int, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    """POST ``body`` to 127.0.0.1:``port`` framed as HTTP/1.1 chunks of 64 KiB, without a
    Content-Length. Returns (status, Content-Type, body)."""
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            path,
            body=chunks,
            headers={**headers, "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def _get(port: int, path: str) -> tuple[str, str]:
    """GET ``path``: (page, Set-Cookie)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.read().decode(), response.getheader("Set-Cookie", "")
    finally:
        connection.close()


@pytest.fixture()
def werkzeug_server(app, db):
    """The app under werkzeug's own server (which de-chunks requests) in a thread; yields the
    port. One request at a time, so the requests share the test's rolled-back transaction."""
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="chunked-413", daemon=True
    )
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_werkzeug_server_answers_a_chunked_api_body_over_the_limit_with_a_json_413(
    app, db, werkzeug_server
) -> None:
    secret = issue_token(db, UserFactory())
    before = _count(db, Application)
    status, content_type, body = _post_chunked(
        werkzeug_server,
        "/api/v1/applications",
        _json_of_size(_limit(app) + 1),
        {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    _assert_json_413(status, content_type.split(";")[0], json.loads(body), app)
    assert _count(db, Application) == before


def test_werkzeug_server_answers_a_chunked_form_over_the_limit_with_the_413_page(
    app, db, werkzeug_server
) -> None:
    page, cookie = _get(werkzeug_server, "/register")
    email = "chunky-live@example.com"
    status, content_type, body = _post_chunked(
        werkzeug_server,
        "/register",
        _registration_of_size(_csrf_from(page, "/register"), email, _limit(app) + 1),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie.split(";")[0],
        },
    )
    text = body.decode()
    assert status == 413 and content_type.startswith("text/html") and "Too large" in text
    assert f"larger than the limit of {_limit(app)} bytes" in text and "Traceback" not in text
    assert db.scalar(select(User).where(User.email == email)) is None


def test_gunicorn_answers_a_chunked_api_body_over_the_limit_with_a_json_413(
    app, database_url, committed_db, tmp_path
) -> None:
    """Under the production server: gunicorn de-chunks the body itself and passes it on with
    ``wsgi.input_terminated`` for every request."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn, "gunicorn is a dependency of the project (pyproject.toml)"
    secret = issue_token(committed_db, UserFactory())
    committed_db.commit()
    before = _count(committed_db, Application)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVIEWAPP_")}
    env.update(REVIEWAPP_CONFIG="testing", REVIEWAPP_DATABASE_URL=database_url)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as handle:
        server = subprocess.Popen(
            [gunicorn, "--workers", "1", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                _get(port, "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
        status, content_type, body = _post_chunked(
            port,
            "/api/v1/applications",
            _json_of_size(_limit(app) + 1),
            {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    _assert_json_413(status, content_type.split(";")[0], json.loads(body), app)
    committed_db.rollback()
    assert _count(committed_db, Application) == before
    assert "Traceback" not in log.read_text()


# --- bodies nobody reads: the limit still holds -------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_to_a_route_that_ignores_its_body_gets_413_and_changes_nothing(
    app, client, db, chunked
) -> None:
    """claim-next and submit take no body; one over the limit is still refused (413, the JSON
    error) and nothing is claimed or submitted."""
    from tests.factories import ApplicationFactory, OrganizationFactory

    queued = ApplicationFactory(submitted=True)
    draft = ApplicationFactory()
    reviewer = UserFactory(reviewer=True, organization=OrganizationFactory())
    review_token = issue_token(db, reviewer, scopes="read review")
    write_token = issue_token(db, draft.submitter, scopes="read write")
    body = b"x" * (_limit(app) + 1)
    for path, token in (
        ("/api/v1/queue/claim-next", review_token),
        (f"/api/v1/applications/{draft.reference}/submit", write_token),
    ):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        kwargs = _as_chunked(headers) if chunked else {"headers": headers}
        response = client.post(path, data=body, **kwargs)
        _assert_json_413(response.status_code, response.mimetype, response.get_json(), app)
    db.expire_all()
    assert queued.claimed_by_id is None and queued.status == "queued"
    assert draft.status == "draft"
    # an empty body (or none) is fine
    ok = client.post(
        "/api/v1/queue/claim-next", headers={"Authorization": f"Bearer {review_token}"}
    )
    assert ok.status_code == 200 and ok.get_json()["reference"] == queued.reference
