"""Logging: request ids everywhere, optional JSON lines, one log line per request.

- :func:`current_request_id` is the id of the HTTP request being served or, inside a background
  job, the id of the request that enqueued it (carried in the RQ job's ``meta``).
- ``LOG_FORMAT = "json"`` (on in Production) makes every log record one JSON object per line on
  stderr, formatted by python-json-logger: ``{"timestamp": "2026-11-30T10:00:00.123+00:00"
  (UTC), "level", "logger", "message", "request_id", ...extra fields}``. ``"text"`` leaves logging
  as Python, Flask and gunicorn configure it.
- Every request logs one line on ``reviewapp.request`` with ``method``, ``path``, ``status``,
  ``duration_ms`` (float, milliseconds) and ``user_id`` (None when anonymous).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, g, has_request_context, request

request_log = logging.getLogger("reviewapp.request")

#: the request id a background job runs for (set around the job's execution)
_job_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "reviewapp_job_request_id", default=None
)
_HANDLER_FLAG = "_reviewapp_json_handler"


def current_request_id() -> str | None:
    """The id of the HTTP request being served, else of the request that enqueued the running
    job, else None (CLI commands, jobs enqueued outside a request)."""
    if has_request_context():
        rid = g.get("request_id")
        if rid:
            return str(rid)
    return _job_request_id.get()


@contextlib.contextmanager
def job_request_id(request_id: str | None) -> Iterator[None]:
    """Run the body as part of request ``request_id`` (log lines and audit events carry it)."""
    token = _job_request_id.set(request_id)
    try:
        yield
    finally:
        _job_request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (None outside a request or job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


def configure_logging(app: Flask) -> None:
    """Install the JSON handler on the root logger when ``LOG_FORMAT`` is "json" (replacing one
    installed by an earlier app of this process) and register the per-request log line.

    Raises:
        ValueError: LOG_FORMAT is neither "text" nor "json".
    """
    fmt = str(app.config.get("LOG_FORMAT", "text")).lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT must be 'text' or 'json', not {fmt!r}")
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        root = logging.getLogger()
        for old in [h for h in root.handlers if getattr(h, _HANDLER_FLAG, False)]:
            root.removeHandler(old)
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _HANDLER_FLAG, True)
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp=True,  # ISO 8601 in UTC
            )
        )
        root.addHandler(handler)
        root.setLevel(str(app.config.get("LOG_LEVEL", "INFO")).upper())
        # Flask's own handler would print every app.logger line a second time, as text
        app.logger.handlers.clear()
        app.extensions["reviewapp_log_handler"] = handler

    def _start_clock() -> None:
        g.request_started = time.perf_counter()

    # before the extensions' hooks (CSRF, HTTPS redirect) so refused requests are timed too
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)

    @app.after_request
    def _log_request(response: Any) -> Any:
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        request_log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": _user_id(),
            },
        )
        return response


def _user_id() -> int | None:
    """The signed-in user's (or API token owner's) id, without loading anyone from the
    database: the request log line must not query, least of all while the database is down."""
    user = g.get("api_user") or g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "id", None)
