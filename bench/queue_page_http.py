"""Queue page over HTTP at 1M applications: reviewapp under gunicorn vs a bare Flask + Core page.

Usage::

    .venv/bin/python bench/queue_page_http.py [--rows 1000000] [--reuse] [--workers 4]
        [--connections 16] [--seconds 30] [--database-url URL] [--redis-url URL]

Seeds ``--rows`` applications with bench/seed.py (``--reuse``: keep a database that already
holds at least that many, after bringing its schema to the newest migration), then runs
``GET /queue`` and ``GET /queue?tier=high`` of the real app under gunicorn (``--workers`` sync
workers, default settings, PostgreSQL + Redis) with ``--connections`` wrk clients, logged in as a
reviewer by a signed session cookie; then the same wrk load against the ceiling
(bench/ceiling_apps.py ``queue_app``: the same 50 rows by one SQLAlchemy Core query, same
gunicorn configuration). Prints p50/p95/p99, requests/s, the throughput ratio to the ceiling,
and the resident memory of each reviewapp worker after the load (target < 200 MB).
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_common import (  # noqa: E402
    BENCH_DIR,
    SECRET_KEY,
    USER_AGENT,
    WrkResult,
    gunicorn,
    percent,
    run_wrk,
    server_env,
    session_cookie,
)
from seed import seed_database  # noqa: E402

from reviewapp import create_app  # noqa: E402
from reviewapp.applications.models import Application  # noqa: E402
from reviewapp.auth.models import User  # noqa: E402
from reviewapp.cli import upgrade_database  # noqa: E402
from reviewapp.extensions import db  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_bench_queue"
PAGES = ("/queue", "/queue?tier=high")


def existing_rows(database_url: str) -> int:
    """Applications in the database at ``database_url``; 0 when it does not exist."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Application.__table__)) or 0)
    except Exception:  # noqa: BLE001 - missing database or schema: seed it
        return 0
    finally:
        engine.dispose()


def prepare(database_url: str, rows: int, reuse: bool) -> None:
    """Seed (or reuse) the benchmark database and bring it to the newest migration."""
    # the other benchmarks add applications (submissions), so "at least" the seeded count
    if reuse and existing_rows(database_url) >= rows:
        upgrade_database(database_url)
        engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()
        print(f"reusing {rows:,} applications in {database_url.rsplit('/', 1)[-1]}")
        return
    result = seed_database(database_url, rows, quiet=True)
    print(
        f"seeded {rows:,} applications in {result.seconds:.0f} s ({result.rows_per_second:,.0f}/s)"
    )


def reviewer_cookie(database_url: str) -> str:
    """A session cookie of reviewer000@bench.example (see bench/seed.py)."""
    app = create_app("default", DATABASE_URL=database_url, SECRET_KEY=SECRET_KEY)
    with app.app_context():
        user = db.session.scalars(
            select(User).where(User.email == "reviewer000@bench.example")
        ).one()
        return session_cookie(app, user)


def check_page(base: str, path: str, cookie: str, marker: str) -> None:
    """GET once and fail loudly unless it answers 200 with ``marker`` and 50 rows."""
    request = urllib.request.Request(  # noqa: S310 - local http
        base + path, headers={"Cookie": f"session={cookie}", "User-Agent": USER_AGENT}
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        body = response.read().decode()
        if response.status != 200 or marker not in body:
            raise RuntimeError(f"{path}: unexpected answer {response.status}: {body[:300]}")
        rows = body.count("APP-") // 2  # each reference shows as link target and text
        if rows < 50:
            raise RuntimeError(f"{path}: {rows} rows on the page, expected 50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    args = parser.parse_args()
    prepare(args.database_url, args.rows, args.reuse)
    cookie = reviewer_cookie(args.database_url)
    headers = {"Cookie": f"session={cookie}"}
    env = server_env(args.database_url, args.redis_url, BENCH_DATABASE_URL=args.database_url)
    results: dict[tuple[str, str], WrkResult] = {}
    rss: list[float] = []
    print(
        f"{args.workers} gunicorn sync workers, {args.connections} wrk connections, "
        f"{args.seconds} s per run"
    )
    with gunicorn("wsgi:app", workers=args.workers, env=env) as server:
        for path in PAGES:
            check_page(server.url, path, cookie, "Review queue")
            run_wrk(server.url + path, connections=args.connections, seconds=5, headers=headers)
            results["reviewapp", path] = r = run_wrk(
                server.url + path,
                connections=args.connections,
                seconds=args.seconds,
                headers=headers,
            )
            print(f"reviewapp GET {path:18} {r.line()}")
        rss = server.worker_rss_mb()
    with gunicorn(
        "ceiling_apps:queue_app", workers=args.workers, env=env, chdir=BENCH_DIR
    ) as server:
        for path in PAGES:
            check_page(server.url, path, cookie, "<table>")
            run_wrk(server.url + path, connections=args.connections, seconds=5, headers=headers)
            results["ceiling", path] = r = run_wrk(
                server.url + path,
                connections=args.connections,
                seconds=args.seconds,
                headers=headers,
            )
            print(f"ceiling   GET {path:18} {r.line()}")
    for path in PAGES:
        real, ceiling = results["reviewapp", path], results["ceiling", path]
        print(
            f"GET {path:18} p95 {real.p95:6.1f} ms (target <= 100: {'met' if real.p95 <= 100 else 'NOT met'}); "
            f"throughput {percent(real.rps, ceiling.rps)} of the ceiling "
            f"(target >= 60 %: {'met' if real.rps >= 0.6 * ceiling.rps else 'NOT met'})"
        )
    worst = max(rss, default=0.0)
    print(
        "reviewapp worker RSS after the load: "
        + ", ".join(f"{m:.0f}" for m in rss)
        + f" MiB (max {worst:.0f}; target < 200: {'met' if worst < 200 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
