"""Claim-next over HTTP: 32 reviewers claim and release concurrently; no application twice.

Usage::

    .venv/bin/python bench/claim_next_http.py [--rows 1000000] [--reuse] [--reviewers 32]
        [--workers 4] [--seconds 30] [--database-url URL] [--redis-url URL]

Seeds (or, with ``--reuse``, keeps) a bench/seed.py database, issues one API token with the
``review`` scope to each of ``--reviewers`` reviewer accounts, and runs the real app under
gunicorn. wrk runs one thread with one connection per reviewer (bench/wrk/claim_release.lua):
``POST /api/v1/queue/claim-next``, then ``POST /api/v1/applications/<ref>/release``, repeated.
The ceiling is a Flask hello-world (bench/ceiling_apps.py) under the same gunicorn configuration
and the same wrk threads and connections. The API rate limits are raised for the run (one
client address sends everything); the limiter still counts every request in Redis.

Two floors are measured in the same run, same configuration, to show where the time goes:
``GET /healthz`` of the real app (Flask and the app's request hooks, no database), and an
authenticated no-op API route (bench/floor_app.py: everything an API request pays before its
own work: the rate limits in Redis, the pool checkout with pre-ping, the token lookup).

Afterwards the audit log is checked: walking each application's claim / release / lease-expiry
events in chain order, no claim may happen while another reviewer holds the application.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_common import (  # noqa: E402
    BENCH_DIR,
    WrkResult,
    api_server_env,
    gunicorn,
    load_api,
    percent,
    run_wrk,
    server_env,
)
from queue_page_http import prepare  # noqa: E402

from reviewapp import create_app  # noqa: E402
from reviewapp.audit.models import AuditEvent  # noqa: E402
from reviewapp.auth.models import User  # noqa: E402
from reviewapp.auth.services import issue_token  # noqa: E402
from reviewapp.extensions import db  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_bench_claim"
HOLD_ENDS = {"application.release", "application.lease_expired", "application.decide"}


def issue_tokens(database_url: str, count: int) -> tuple[list[str], int]:
    """API tokens (scopes read, review) for reviewer000..; returns them and the id of the last
    audit event before the run."""
    app = create_app("testing", DATABASE_URL=database_url)
    with app.app_context():
        users = db.session.scalars(
            select(User).where(User.email.like("reviewer%@bench.example")).order_by(User.email)
        ).all()[:count]
        if len(users) < count:
            raise SystemExit(f"error: the database has only {len(users)} bench reviewers")
        tokens = [issue_token(db.session, u, name="bench", scopes="read review") for u in users]
        db.commit()
        last = db.session.scalar(select(func.max(AuditEvent.id))) or 0
    return tokens, last


def double_claims(database_url: str, after_id: int) -> tuple[int, int, list[str]]:
    """Walk the claim/release audit events after ``after_id`` per application, in chain order.

    Returns (claim events, applications claimed, problems); a problem is a claim by one
    reviewer while another still held the application (claimed and not yet released).
    """
    app = create_app("testing", DATABASE_URL=database_url)
    holder: dict[str, int | None] = defaultdict(lambda: None)
    problems: list[str] = []
    claims = 0
    with app.app_context():
        rows = db.session.execute(
            select(AuditEvent.id, AuditEvent.subject_id, AuditEvent.actor_id, AuditEvent.action)
            .where(AuditEvent.id > after_id, AuditEvent.subject_type == "application")
            .order_by(AuditEvent.chain_seq)  # commit order (reviewapp/audit/chain.py)
        ).all()
    for event_id, subject, actor, action in rows:
        if action == "application.claim":
            claims += 1
            if holder[subject] is not None:
                problems.append(
                    f"event {event_id}: {subject} claimed by user {actor} while user "
                    f"{holder[subject]} held it"
                )
            holder[subject] = actor
        elif action in HOLD_ENDS:
            holder[subject] = None
    return claims, len(holder), problems


def floors(args: argparse.Namespace, wrk_env: dict[str, str]) -> tuple[WrkResult, WrkResult]:
    """``GET /healthz`` and the authenticated no-op ``POST /api/v1/bench/floor``
    (bench/floor_app.py) under the claim run's gunicorn configuration and wrk threads; each
    warmed up for 5 s, then measured for ``args.seconds``."""
    n = args.reviewers
    env = api_server_env(args.database_url, args.redis_url)
    floor_env = {**wrk_env, "BENCH_PATH": "/api/v1/bench/floor"}
    with gunicorn("floor_app:app", workers=args.workers, env=env, chdir=BENCH_DIR) as server:
        results = []
        for path, script, script_env in (
            ("/healthz", "report.lua", None),
            ("/", "token_post.lua", floor_env),
        ):
            for seconds in (5, args.seconds):
                result = run_wrk(
                    server.url + path,
                    connections=n,
                    threads=n,
                    seconds=seconds,
                    script=script,
                    env=script_env,
                )
            results.append(result)
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--reviewers", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    args = parser.parse_args()
    prepare(args.database_url, args.rows, args.reuse)
    tokens, last_event = issue_tokens(args.database_url, args.reviewers)
    wrk_env = {"BENCH_TOKENS": ",".join(tokens)}
    n = args.reviewers
    print(f"{args.workers} gunicorn sync workers, {n} reviewers (wrk threads = connections = {n})")
    real = load_api(
        database_url=args.database_url,
        redis_url=args.redis_url,
        workers=args.workers,
        clients=n,
        seconds=args.seconds,
        script="claim_release.lua",
        wrk_env=wrk_env,
    )
    print(f"reviewapp claim-next + release  {real.line()}")
    print(
        f"  claims {real.extra['claims']:,} ({real.extra['claims'] / real.seconds:.1f}/s), "
        f"releases {real.extra['releases']:,}, nothing to claim {real.extra['empty']}, "
        f"refused {real.extra['refused']}"
    )
    healthz, floor = floors(args, wrk_env)
    print(f"reviewapp GET /healthz          {healthz.line()}")
    print(f"authenticated no-op API POST    {floor.line()}")
    env = server_env(args.database_url, args.redis_url)
    with gunicorn(
        "ceiling_apps:hello_app", workers=args.workers, env=env, chdir=BENCH_DIR
    ) as server:
        run_wrk(server.url + "/hello", connections=n, threads=n, seconds=3)
        hello = run_wrk(server.url + "/hello", connections=n, threads=n, seconds=args.seconds)
    print(f"hello-world GET /hello          {hello.line()}")
    print(
        f"of hello-world: /healthz {percent(healthz.rps, hello.rps)}, authenticated no-op "
        f"{percent(floor.rps, hello.rps)}, claim-next + release {percent(real.rps, hello.rps)}"
    )
    claims, apps, problems = double_claims(args.database_url, last_event)
    print(
        f"audit check: {claims:,} claim events on {apps:,} applications, "
        f"{len(problems)} double claims"
    )
    for problem in problems[:10]:
        print("  " + problem)
    print(
        f"throughput {percent(real.rps, hello.rps)} of hello-world "
        f"(target >= 25 %: {'met' if real.rps >= 0.25 * hello.rps else 'NOT met'}); "
        f"double claims: {'none' if not problems else len(problems)}"
    )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
