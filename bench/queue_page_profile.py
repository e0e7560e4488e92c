"""Profile one queue page view in-process against an already seeded database.

Usage::

    .venv/bin/python bench/queue_page_profile.py --database-url URL [--requests 40]
        [--path /queue] [--profile] [--sort cumulative] [--limit 40]

Builds the app with the embedded default settings (as the HTTP benchmark's gunicorn does),
logs in as ``reviewer000@bench.example`` (bench/seed.py) through Flask-Login's test client
with the benchmark's User-Agent, warms up, then times ``--requests`` views of ``--path`` with
the Flask test client (no network, no gunicorn): prints the min/median/p95 in milliseconds,
the SQL statements of one view with their times, and with ``--profile`` a cProfile of ``--profile-views``
views (``--sort``, ``--limit`` lines; ``--gc-freeze``: as wsgi.py). Nothing is written to the database.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_common import SECRET_KEY, USER_AGENT, session_cookie  # noqa: E402

from reviewapp import create_app  # noqa: E402
from reviewapp.auth.models import User  # noqa: E402
from reviewapp.extensions import db  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--path", default="/queue")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-views", type=int, default=20)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="time the bare page of bench/ceiling_apps.py instead (same cookie)",
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after building the app (as wsgi.py)"
    )
    args = parser.parse_args()
    app = create_app(
        "default",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        SECRET_KEY=SECRET_KEY,
        LOG_LEVEL="WARNING",
    )
    with app.app_context():
        user = db.session.scalars(
            select(User).where(User.email == "reviewer000@bench.example")
        ).one()
        cookie = session_cookie(app, user)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    if args.ceiling:
        os.environ.update(BENCH_DATABASE_URL=args.database_url, REVIEWAPP_SECRET_KEY=SECRET_KEY)
        from ceiling_apps import queue_app

        client = queue_app.test_client()
    else:
        client = app.test_client()
    client.set_cookie("session", cookie)
    headers = {"User-Agent": USER_AGENT}

    def view() -> Any:
        response = client.get(args.path, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
        if response.status_code != 200:
            raise SystemExit(f"{args.path}: {response.status_code} {response.text[:300]}")
        return response

    for _ in range(5):
        view()
    gc_pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((time.perf_counter() - gc_started[0]) * 1000)

    gc.callbacks.append(on_gc)
    times = []
    for _ in range(args.requests):
        start = time.perf_counter()
        view()
        times.append((time.perf_counter() - start) * 1000)
    gc.callbacks.remove(on_gc)
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(
        f"GET {args.path}: min {times[0]:.1f} ms  median {statistics.median(times):.1f} ms  "
        f"p95 {p95:.1f} ms  ({args.requests} views); garbage collector: {len(gc_pauses)} runs, "
        f"{sum(gc_pauses):.1f} ms in all, longest {max(gc_pauses, default=0):.1f} ms"
    )

    statements: list[tuple[float, str]] = []
    if args.ceiling:
        from ceiling_apps import engine as ceiling_engine

        engine = ceiling_engine()
    else:
        with app.app_context():
            engine = db.engine

    def before(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        conn.info["t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        elapsed = (time.perf_counter() - conn.info.pop("t0")) * 1000
        statements.append((elapsed, " ".join(statement.split())[:150]))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    view()
    event.remove(engine, "before_cursor_execute", before)
    event.remove(engine, "after_cursor_execute", after)
    print(f"{len(statements)} statements, {sum(t for t, _ in statements):.1f} ms in the database:")
    for elapsed, text in statements:
        print(f"  {elapsed:6.1f} ms  {text}")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.profile_views):
            view()
        profiler.disable()
        print(f"cProfile of {args.profile_views} views (times are totals over all of them):")
        if os.environ.get("PROFILE_DUMP"):
            profiler.dump_stats(os.environ["PROFILE_DUMP"])
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.limit)


if __name__ == "__main__":
    main()
