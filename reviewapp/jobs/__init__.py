"""Background jobs: RQ + Redis when ``REDIS_URL`` is set, inline after commit otherwise.

Jobs are enqueued only after the transaction that asked for them commits
(:func:`enqueue_after_commit`), take ids rather than objects, and run inside an application
context calling the same services as the web views.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, has_app_context

log = logging.getLogger(__name__)

DEFAULT_QUEUE = "default"
QUEUES = ("high", DEFAULT_QUEUE, "low")

_worker_app: Flask | None = None


def init_jobs(app: Flask) -> None:
    """Record how jobs run for ``app`` (no connection is opened here)."""
    app.extensions["reviewapp_jobs"] = {"redis": None}


def redis_connection(app: Flask | None = None) -> Any | None:
    """The app's Redis client, or None in the embedded (inline) mode."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    url = app.config.get("REDIS_URL")
    if not url:
        return None
    state = app.extensions["reviewapp_jobs"]
    if state["redis"] is None:
        from redis import Redis

        state["redis"] = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return state["redis"]


def rq_queue(name: str = DEFAULT_QUEUE, app: Flask | None = None) -> Any:
    """The RQ queue ``name`` (prefixed with RQ_QUEUE_PREFIX). Requires REDIS_URL."""
    from rq import Queue

    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    conn = redis_connection(app)
    if conn is None:
        raise RuntimeError("REDIS_URL is not configured")
    return Queue(f"{app.config['RQ_QUEUE_PREFIX']}:{name}", connection=conn)


def enqueue_after_commit(
    func: Callable[..., Any], *args: Any, queue: str = DEFAULT_QUEUE, job_id: str | None = None
) -> None:
    """Run ``func(*args)`` as a job once the current transaction commits.

    ``job_id``: the RQ job's id (letters, digits, ``-`` and ``_``), so the caller can look the
    job up later; RQ makes one up otherwise.

    With Redis, the job is put on the RQ queue; if Redis cannot be reached the failure is logged
    and the work is not lost: jobs that deliver outbox rows are re-found by the outbox dispatcher.
    Without Redis the function runs inline right after the commit, in the same app context.
    Outside an app context (a plain script using the services) nothing is scheduled: outbox
    rows stay pending for ``flask dispatch-outbox`` / ``flask sweep``.
    """
    from reviewapp.extensions import db
    from reviewapp.logs import current_request_id, job_request_id

    if not has_app_context():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    request_id = current_request_id()  # the job's log lines and audit events carry it

    def _run() -> None:
        if app.config.get("REDIS_URL"):
            try:
                rq_queue(queue, app).enqueue(
                    func,
                    *args,
                    job_timeout=600,
                    result_ttl=3600,
                    meta=job_meta(request_id),
                    job_id=job_id,
                )
            except Exception:  # noqa: BLE001 - Redis down must not break the committed request
                log.exception(
                    "could not enqueue %s%r; it will be retried by the dispatcher",
                    func.__name__,
                    args,
                )
            return
        try:
            with job_request_id(request_id):
                func(*args)
        except Exception:  # noqa: BLE001 - inline job failure must not fail the request
            log.exception("inline job %s%r failed", func.__name__, args)
            db.rollback()

    db.after_commit(_run)


def job_meta(request_id: str | None = None) -> dict[str, Any]:
    """RQ job ``meta`` carrying ``request_id`` (default: the current request's or job's id), so
    the job's log lines and audit events name the request that asked for it."""
    from reviewapp.logs import current_request_id

    rid = request_id if request_id is not None else current_request_id()
    return {"request_id": rid} if rid else {}


def job_app() -> Flask:
    """The Flask app a job runs in: the current one, or one built once per worker process."""
    global _worker_app
    from flask import has_app_context

    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined, no-any-return]
    if _worker_app is None:
        from reviewapp import create_app

        _worker_app = create_app()
    return _worker_app


def run_in_app_context(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for job functions: run inside an app context (reusing the current one)."""
    import contextlib
    import functools

    from flask import has_app_context

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rq import get_current_job

        from reviewapp.logs import job_request_id

        job = get_current_job()
        if job is None:  # inline, or a direct call (the caller's request id applies)
            if has_app_context():
                return func(*args, **kwargs)
            with job_app().app_context():
                return func(*args, **kwargs)
        # an RQ worker (``flask worker`` may already have pushed an app context)
        request_id = (job.meta or {}).get("request_id")
        ctx = contextlib.nullcontext() if has_app_context() else job_app().app_context()
        with ctx, job_request_id(request_id):
            log.info("job %s %s started", func.__name__, job.id, extra={"job_id": job.id})
            try:
                result = func(*args, **kwargs)
            except Exception:
                # RQ logs the traceback too, but outside this request id: this line carries it
                log.exception("job %s %s failed", func.__name__, job.id, extra={"job_id": job.id})
                raise
            log.info("job %s %s finished", func.__name__, job.id, extra={"job_id": job.id})
            return result

    return wrapper
