"""Shared web pieces: home page, template helpers, permission decorator, error pages."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
from collections.abc import Callable
from typing import IO, Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length, get_input_stream

from reviewapp.auth.models import Permission
from reviewapp.db import (
    CONCURRENT_WRITE_MESSAGE,
    concurrent_writes_as_conflicts,
    is_unique_violation,
)
from reviewapp.errors import DomainError

bp = Blueprint("web", __name__)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def permission_required(permission: Permission) -> Callable[[F], F]:
    """View decorator: log-in required, then ``permission`` (403 otherwise)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


# what a ``next=`` target may contain: an absolute path on this site in plain ASCII URL
# characters (url_for percent-encodes everything else), never a backslash or whitespace
_SAFE_NEXT_RE = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@/%?#]*")


def external_url(endpoint: str, **values: Any) -> str:
    """Absolute URL of ``endpoint`` on the configured public address ``BASE_URL``.

    For links sent by email (password reset, invitations, citations in decisions): never built
    from the request's Host or X-Forwarded-Host headers, which a client chooses (a reset link
    pointing at an attacker's host would hand over the token). Works without a request too.
    """
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return str(current_app.config["BASE_URL"]).rstrip("/") + path


def is_safe_next(target: str | None) -> bool:
    """True only for a path on this site (``/x``, ``/x?y=1``), never another host or scheme.

    Refused: scheme-relative (``//h``, ``///h``, ``/\\h``), any scheme (``https:``,
    ``javascript:``, ``data:``), backslashes, whitespace and control characters anywhere
    (browsers drop tabs and newlines, turning ``/\t/h`` into ``//h``), non-ASCII look-alikes,
    ``//`` anywhere in the path, and percent-encoded slashes, backslashes or control characters
    (``/%2F%2Fh``) which some servers and proxies decode before redirecting again.
    """
    if not target or len(target) > 2000 or not _SAFE_NEXT_RE.fullmatch(target):
        return False
    path = target.split("?", 1)[0].split("#", 1)[0]
    decoded = path
    for _ in range(3):  # nested encodings (%252F) decode one layer at a time
        decoded = unquote(decoded)
    if "//" in decoded or "\\" in decoded or any(ord(c) < 32 or ord(c) == 127 for c in decoded):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


CSRF_EXPIRED_MESSAGE = (
    "This form expired (or could not be verified) before it was sent, so nothing was saved. "
    "What you typed is below: check it and submit again."
)


def keeps_input_on_csrf_failure(view: F) -> F:
    """Mark a form view whose input is worth keeping when its CSRF token fails (typically
    expired after a long time typing): instead of the bare 400 page, the CSRF error handler
    calls the view again with ``g.csrf_failed`` set. The view's FlaskForm then fails on its
    csrf field (so nothing is saved: the form must gate every write on ``validate()``), and
    the page re-renders with what was typed, the :data:`CSRF_EXPIRED_MESSAGE` and status 400.

    Only for views whose writes all sit behind FlaskForm validation, ``save_form`` or ``act``
    (which refuse when ``g.csrf_failed`` is set as a second line of defence).
    """
    view.keeps_input_on_csrf_failure = True  # type: ignore[attr-defined]
    return view


def csrf_failed() -> bool:
    """True while a view is re-run to re-render a form whose CSRF token failed."""
    return bool(g.get("csrf_failed"))


MAX_PAGE = 100_000


def page_arg() -> int:
    """The ``page`` query argument as a page number in 1..MAX_PAGE (bad input -> 1)."""
    raw = request.args.get("page", "1")
    if not raw.isdigit() or len(raw) > 6:
        return 1
    return max(1, min(MAX_PAGE, int(raw)))


def act(
    action: Callable[[], T], success: str | Callable[[T], str], category: str = "success"
) -> bool:
    """Run one state-changing service call behind a button (a POST form with only a CSRF token).

    Aborts with 400 when the CSRF token is missing or stale. On a domain error the transaction
    is rolled back and its message flashed; otherwise it is committed and ``success`` flashed.
    ``success`` may be a function of the action's return value. Returns True when the action
    was committed.
    """
    from reviewapp.applications.forms import ConfirmForm
    from reviewapp.extensions import db

    if csrf_failed() or not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        result = action()
        db.commit()
    except DomainError as exc:
        db.rollback()
        flash(exc.message, "danger")
        return False
    flash(success(result) if callable(success) else success, category)
    return True


def save_form(form: Any, action: Callable[[], T], error_prefix: str = "") -> T | None:
    """Validate a submitted form (CSRF included), run ``action`` and commit.

    Returns the action's result (never None on success: actions return what they saved), or
    None when nothing was saved: the form was not valid, or the action raised a domain error,
    which is rolled back and shown next to the fields with ``error_prefix``.
    """
    from reviewapp.extensions import db

    if csrf_failed() or not form.validate_on_submit():
        return None
    try:
        with concurrent_writes_as_conflicts():
            result = action()
            db.commit()
    except DomainError as exc:
        db.rollback()
        show_form_errors(form, exc, error_prefix)
        return None
    return result


def show_form_errors(form: Any, exc: DomainError, prefix: str = "") -> None:
    """Put a domain error's per-field messages next to the form's fields and flash its message."""
    for field, message in exc.fields.items():
        target = getattr(form, field, None)
        if target is not None and hasattr(target, "errors"):
            target.errors = [*target.errors, message]
    flash(prefix + exc.message, "danger")


@bp.route("/")
def index() -> Any:
    """Home: send each role to its main page."""
    if not current_user.is_authenticated:
        return render_template("home.html")
    if current_user.is_admin:
        return redirect(url_for("admin.index"))
    if current_user.can(Permission.view_queue):
        return redirect(url_for("review.queue"))
    return redirect(url_for("applications.index"))


def _due_text(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """ "due in 3 h 20 min" / "overdue by 1 d 2 h" (wall-clock), or "" without a due time."""
    from reviewapp.review.sla import describe

    if when is None:
        return ""
    return describe(when, now or dt.datetime.now(dt.UTC))


def viewer_timezone() -> str:
    """The signed-in user's IANA time zone, else the team's reference zone."""
    from reviewapp.review.clock import business_calendar

    zone = getattr(current_user, "timezone", "") if current_user.is_authenticated else ""
    return zone or business_calendar().tz.key


def local_text(when: dt.datetime | None) -> str:
    """An instant in the viewer's time zone, e.g. "Tue 1 Dec 2026, 14:00 EST"."""
    from reviewapp.review.sla import local_time

    return local_time(when, viewer_timezone()) if when is not None else ""


_ONCE_KEY = "form_once"


def form_once(purpose: str) -> str:
    """A one-shot token for a form whose success page shows a secret (new API token, webhook
    secret): reloading that page re-sends the POST, which must not create a second one.
    Kept in the session (at most 10 per purpose); see :func:`consume_form_once`."""
    import secrets

    value = secrets.token_urlsafe(16)
    store = dict(session.get(_ONCE_KEY) or {})
    store[purpose] = [*store.get(purpose, [])[-9:], value]
    session[_ONCE_KEY] = store
    return value


def consume_form_once(purpose: str) -> bool:
    """True (and the token is used up) when the posted ``once`` token was issued for this
    purpose and not used yet; False for a replayed or forged form."""
    value = request.form.get("once", "")
    store = dict(session.get(_ONCE_KEY) or {})
    issued = list(store.get(purpose, []))
    if not value or value not in issued:
        return False
    issued.remove(value)
    store[purpose] = issued
    session[_ONCE_KEY] = store
    return True


def init_templates(app: Flask) -> None:
    """Register template filters and globals."""
    from reviewapp.policies.services import render_markdown

    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["due"] = _due_text
    app.jinja_env.filters["local"] = local_text
    app.jinja_env.filters["utc"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC") if d else ""
    app.jinja_env.globals["Permission"] = Permission

    def requirement_parameters(requirement: Any) -> list[str]:
        from reviewapp.review.mitigations import describe_parameters

        return describe_parameters(requirement)

    def vocab_label(field: str, value: str) -> str:
        from reviewapp.applications.schema import load_vocabularies

        return str(getattr(load_vocabularies(), field, {}).get(value, value))

    app.jinja_env.globals["requirement_parameters"] = requirement_parameters
    app.jinja_env.globals["form_once"] = form_once
    app.jinja_env.globals["vocab_label"] = vocab_label

    @app.context_processor
    def _inject() -> dict[str, Any]:
        from reviewapp.applications.schema import FIELD_LABELS, load_vocabularies

        return {"vocab": load_vocabularies(), "field_labels": FIELD_LABELS}


class _BodyOverLimitStream(LimitedStream):
    """A request body of unknown length (``Transfer-Encoding: chunked``) that raises
    :exc:`RequestEntityTooLarge` as soon as more than ``limit`` bytes arrive, however it is read.

    werkzeug's own maximum-length stream stops quietly at the limit when read to the end
    (``request.get_data()``, a urlencoded form), so an oversized chunked body reached the app
    cut short: malformed JSON (400), a form missing its tail, or worse, a form whose first
    ``limit`` bytes happened to be valid and were saved. Reading one byte past the limit tells
    "too large" apart from "exactly at the limit".
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(stream, limit + 1, is_max=True)
        self.max_bytes = limit

    def readinto(self, b: bytearray) -> int | None:  # type: ignore[override]
        size = super().readinto(b)
        if self.tell() > self.max_bytes:
            raise RequestEntityTooLarge()
        return size


class BodyLimitedRequest(Request):
    """Flask's request, but a body over ``MAX_CONTENT_LENGTH`` is refused with 413 also when it
    comes without a Content-Length (chunked), not only when its Content-Length says so."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._upload_streams: list[IO[bytes]] = []

    @cached_property
    def stream(self) -> IO[bytes]:
        """The request body: as werkzeug gives it, except that a body of unknown length from a
        server that ends the stream itself (``wsgi.input_terminated``: gunicorn, werkzeug's
        server for chunked requests) raises :exc:`RequestEntityTooLarge` (413) on the first
        read past ``max_content_length`` bytes instead of ending there silently."""
        if self.shallow:
            raise RuntimeError("This request was created with shallow=True: no body to read.")
        limit = self.max_content_length
        if (
            limit is not None
            and "wsgi.input_terminated" in self.environ
            and get_content_length(self.environ) is None
        ):
            return cast(IO[bytes], _BodyOverLimitStream(self.environ["wsgi.input"], limit))
        return get_input_stream(self.environ, max_content_length=limit)

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        # werkzeug's multipart parser opens a temporary file per uploaded file and drops it
        # unclosed when the body turns out too large half-way (a chunked upload): remember
        # each one, so close() releases it at the end of the request
        stream = super()._get_file_stream(
            total_content_length, content_type, filename, content_length
        )
        self._upload_streams.append(stream)
        return stream

    def close(self) -> None:
        """Close the request's files, also those of a multipart body refused half-way."""
        try:
            super().close()
        finally:
            for stream in self._upload_streams:
                stream.close()
            self._upload_streams.clear()


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> Any:
    """The API's error body: ``{"error": {"code", "message", "fields"}}``."""
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


CSRF_FAILED_MESSAGE = (
    "This form expired or was sent from another site, so nothing was saved. "
    "Go back, reload the page and submit it again."
)


def _same_site_referrer() -> str | None:
    """The Referer as a path on this site (for a "back" link), else None."""
    referrer = request.referrer or ""
    parts = urlsplit(referrer)
    if parts.netloc != request.host or parts.scheme not in ("http", "https"):
        return None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return target if is_safe_next(target) else None


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None
) -> Any:
    """The same error as JSON under /api/ (``json_error``) or as the HTML error page elsewhere."""
    if _wants_json():
        return json_error(status, code, message, fields)
    return render_template("error.html", code=status, message=message), status


_HTTP_MESSAGES = {
    400: ("bad_request", "The request was not understood."),
    401: ("unauthorized", "Log in or send a valid API token."),
    403: ("forbidden", "You do not have permission to do that."),
    404: ("not_found", "There is nothing here, or you cannot see it."),
    405: ("method_not_allowed", "That method is not allowed here."),
    413: ("payload_too_large", ""),  # message names the configured limit
    429: ("rate_limited", "Too many requests; slow down."),
}


def _rollback_quietly() -> None:
    """Roll back the request's session after a failed flush or statement (ignoring a second
    failure: teardown closes the session anyway)."""
    from reviewapp.extensions import db

    with contextlib.suppress(Exception):
        db.rollback()


def database_unavailable(exc: Exception) -> Any:
    """503 (HTML page or JSON error, with Retry-After) for a request that lost the database.

    The session is rolled back so the next request starts clean (the pool's pre-ping replaces
    dead connections), and the page is rendered for an anonymous visitor: loading the signed-in
    user would need the database that just failed.
    """
    from flask import current_app, g

    from reviewapp.extensions import db, login_manager

    current_app.logger.warning("database unavailable: %s", type(exc).__name__)
    with contextlib.suppress(Exception):  # the connection is gone; teardown closes the session
        db.rollback()
    if g.get("_login_user") is None:
        g._login_user = login_manager.anonymous_user()
    response = error_response(
        503,
        "database_unavailable",
        "The service is briefly unavailable (database). Nothing was saved; please try again in a moment.",
    )
    if isinstance(response, tuple):
        from flask import make_response

        response = make_response(*response)
    response.headers["Retry-After"] = "5"
    return response


NUL_MESSAGE = (
    "Text cannot contain the NUL character (U+0000), which the database cannot store; "
    "remove it from {fields} and try again. Nothing was saved."
)


def init_errors(app: Flask) -> None:
    """Error pages (HTML) and JSON errors under /api/."""

    @app.before_request
    def _refuse_oversized_bodies() -> None:
        # a body over the limit is refused also where the view never reads it (claim-next,
        # submit, release): a Content-Length over the limit without reading a byte; a chunked
        # body is read here, which BodyLimitedRequest stops with 413 past the limit (the view
        # gets the cached bytes)
        limit = request.max_content_length
        if limit is None:
            return
        length = request.content_length
        if length is not None:
            if length > limit:
                raise RequestEntityTooLarge()
        elif "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            request.get_data(cache=True)

    @app.before_request
    def _refuse_nul_characters() -> Any:
        # PostgreSQL text cannot hold U+0000: a browser form holding it is refused up front (a
        # 400 page naming the fields) instead of a database error; the API's schemas refuse it
        # field by field (422)
        if request.method not in {"POST", "PUT", "PATCH"} or request.path.startswith("/api/"):
            return None
        bad = sorted({k for k, values in request.form.lists() for v in values if "\x00" in v})
        if bad:
            return error_response(
                400, "invalid_character", NUL_MESSAGE.format(fields=", ".join(bad))
            )
        return None

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Any:
        return error_response(exc.status, exc.code, exc.message, exc.fields)

    @app.errorhandler(StaleDataError)
    def _stale(exc: StaleDataError) -> Any:
        # the session's flush failed: roll back before the error page loads the signed-in user
        _rollback_quietly()
        return error_response(409, "conflict", CONCURRENT_WRITE_MESSAGE)

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError) -> Any:
        _rollback_quietly()
        if is_unique_violation(exc):  # the same thing inserted twice at once (double submit)
            return error_response(409, "conflict", CONCURRENT_WRITE_MESSAGE)
        if app.testing:
            raise exc
        app.logger.error("integrity error", exc_info=exc)
        return error_response(500, "internal_error", "Something went wrong on our side.")

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        # CSRFProtect refused the POST in before_request: the view has not run. Views marked
        # with keeps_input_on_csrf_failure run once more, flagged, to re-render the typed form.
        view = app.view_functions.get(request.endpoint or "")
        if (
            view is not None
            and getattr(view, "keeps_input_on_csrf_failure", False)
            and not csrf_failed()
            and not _wants_json()
        ):
            from reviewapp.extensions import db

            g.csrf_failed = True
            flash(CSRF_EXPIRED_MESSAGE, "danger")
            try:
                response = make_response(view(**(request.view_args or {})))
            except HTTPException as refused:
                db.rollback()
                if refused.code != 400:
                    return _http(refused)  # 403/404: the same answer as without the token
                response = make_response(_csrf_page())
            db.rollback()  # nothing a re-render loaded may be committed
            if response.status_code < 300 or response.status_code in (409, 422):
                response.status_code = 400
            return response
        return _csrf_page()

    def _csrf_page() -> Any:
        if _wants_json():
            return json_error(400, "csrf_failed", CSRF_FAILED_MESSAGE)
        return render_template(
            "error.html", code=400, message=CSRF_FAILED_MESSAGE, back=_same_site_referrer()
        ), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        code = exc.code or 500
        name, message = _HTTP_MESSAGES.get(code, ("http_error", exc.description or exc.name))
        if code == 413:
            message = f"The request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes."
        return error_response(code, name, message)

    # PostgreSQL restarting, failing over or unreachable: psycopg raises OperationalError (or
    # InterfaceError on a closed connection); the client gets a clean 503, tests included
    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(InterfaceError, database_unavailable)

    if app.testing:
        return  # let tests see the traceback

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error")
        _rollback_quietly()  # the error page loads the signed-in user through the session
        return error_response(500, "internal_error", "Something went wrong on our side.")
