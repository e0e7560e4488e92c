"""Submissions over the API: developers create-and-submit applications (triage included).

Usage::

    .venv/bin/python bench/submit_http.py [--rows 1000000] [--reuse] [--developers 16]
        [--workers 4] [--seconds 30] [--database-url URL] [--redis-url URL]

Seeds (or, with ``--reuse``, keeps) a bench/seed.py database, issues a ``write`` API token to
``--developers`` developers of different organizations, and runs the real app under gunicorn
(default settings, PostgreSQL + Redis). wrk runs one thread and one connection per developer
(bench/wrk/submit.lua); each request is ``POST /api/v1/applications`` with ``"submit": true``
and a complete content, so the app validates it, stores the draft and the revision, runs the
published default ruleset, places the application in its queue with its SLA clock, writes the
audit events and the outbox row, and answers 201 with the application. The API rate limits are
raised for the run (one client address sends everything); the limiter still counts in Redis.
Afterwards the database is checked: every 201 is a queued application with a triage result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_common import load_api  # noqa: E402
from queue_page_http import prepare  # noqa: E402

from reviewapp import create_app  # noqa: E402
from reviewapp.applications.models import Application, Revision  # noqa: E402
from reviewapp.auth.models import User  # noqa: E402
from reviewapp.auth.services import issue_token  # noqa: E402
from reviewapp.extensions import db  # noqa: E402
from reviewapp.triage.models import TriageResult  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_bench_submit"
TITLE = "Bench submission"
BODY = {
    "submit": True,
    "title": f"{TITLE} BENCH_N",
    "category": "assistant_chatbot",
    "description": "Answers customer questions about orders, returns and delivery times.",
    "benefits": "Customers get answers at night and on weekends.",
    "end_users": ["consumers"],
    "domains": ["general"],
    "modalities": ["text"],
    "monthly_requests": 20000,
    "human_review_of_outputs": False,
    "safety_measures": "Input and output moderation; a person takes over on request.",
    "product_url": "https://example.com/shop-help",
}


def issue_tokens(database_url: str, count: int) -> tuple[list[str], int]:
    """``write`` tokens for the first developer of ``count`` organizations; returns them and
    the highest application id before the run."""
    app = create_app("testing", DATABASE_URL=database_url)
    with app.app_context():
        users = db.session.scalars(
            select(User).where(User.email.like("dev%.0@bench.example")).order_by(User.email)
        ).all()[:count]
        if len(users) < count:
            raise SystemExit(f"error: the database has only {len(users)} bench developers")
        tokens = [issue_token(db.session, u, name="bench", scopes="read write") for u in users]
        db.commit()
        last = db.session.scalar(select(func.max(Application.id))) or 0
    return tokens, last


def check_created(database_url: str, after_id: int) -> tuple[int, int, int]:
    """(applications created after ``after_id``, of them queued, of them with a triage result)."""
    app = create_app("testing", DATABASE_URL=database_url)
    with app.app_context():
        created = db.session.scalar(
            select(func.count()).select_from(Application).where(Application.id > after_id)
        )
        queued = db.session.scalar(
            select(func.count())
            .select_from(Application)
            .where(Application.id > after_id, Application.status == "queued")
        )
        triaged = db.session.scalar(
            select(func.count(func.distinct(Application.id)))
            .select_from(Application)
            .join(Revision, Revision.id == Application.current_revision_id)
            .join(TriageResult, TriageResult.revision_id == Revision.id)
            .where(Application.id > after_id)
        )
    return int(created or 0), int(queued or 0), int(triaged or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--developers", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    args = parser.parse_args()
    prepare(args.database_url, args.rows, args.reuse)
    tokens, last_id = issue_tokens(args.database_url, args.developers)
    n = args.developers
    print(f"{args.workers} gunicorn sync workers, {n} developers (wrk threads = connections = {n})")
    result = load_api(
        database_url=args.database_url,
        redis_url=args.redis_url,
        workers=args.workers,
        clients=n,
        seconds=args.seconds,
        script="submit.lua",
        wrk_env={"BENCH_TOKENS": ",".join(tokens), "BENCH_BODY": json.dumps(BODY)},
    )
    created, queued, triaged = check_created(args.database_url, last_id)
    rate = result.extra["created"] / result.seconds
    print(f"POST /api/v1/applications (submit)  {result.line()}")
    print(
        f"{rate:.1f} submissions/s (target >= 100: {'met' if rate >= 100 else 'NOT met'}); "
        f"database: {created:,} created, {queued:,} queued, {triaged:,} with a triage result; "
        f"{result.extra['failed']} answers were not 201"
    )
    if result.extra["failed"] or created != queued or created != triaged:
        sys.exit(1)


if __name__ == "__main__":
    main()
