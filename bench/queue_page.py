"""Queue page latency at scale: bulk-load N applications into PostgreSQL, then time GET /queue.

Usage::

    .venv/bin/python bench/queue_page.py [--rows 100000] [--database-url URL] [--requests 30]

The database (default ``reviewapp_bench`` on the local PostgreSQL) is dropped and recreated.
Rows are spread over 50 organizations, all four tiers and the standard/high-risk queues, 90 %
queued and 10 % in review. The page is requested through the Flask test client as a reviewer
(no network), unfiltered and with a tier filter, and the script prints p50/p95 in milliseconds
and the ratio to the bare SQL query that selects the same 50 rows (the ceiling).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from pathlib import Path

from sqlalchemy import create_engine, insert, select, text

from reviewapp import create_app
from reviewapp.applications.models import Application, Revision
from reviewapp.auth.models import Organization, Role, User
from reviewapp.cli import seed_reference_data, upgrade_database
from reviewapp.db import recreate_postgres_database
from reviewapp.extensions import db
from reviewapp.review.services import QueueFilters, queue_statement

TIERS = [
    ("low", 0, "standard"),
    ("medium", 1, "standard"),
    ("high", 2, "high-risk"),
    ("prohibited", 3, "policy-violations"),
]


def load(url: str, rows: int) -> float:
    """Bulk-insert ``rows`` queued applications with one revision each; returns seconds."""
    app = create_app("testing", DATABASE_URL=url)
    start = time.perf_counter()
    with app.app_context():
        seed_reference_data(db.session, Path(app.config["SEED_DIR"]))
        orgs = [Organization(name=f"Bench org {i}") for i in range(50)]
        db.session.add_all(orgs)
        db.session.flush()
        users = [
            User(
                email=f"bench{i}@example.com",
                password_hash="!",  # noqa: S106 - disabled account
                role=Role.developer,
                organization_id=o.id,
            )
            for i, o in enumerate(orgs)
        ]
        db.session.add_all(users)
        db.session.commit()
        rnd = random.Random(42)
        now = dt.datetime.now(dt.UTC)
        batch = 5000
        for offset in range(0, rows, batch):
            apps = []
            for i in range(offset, min(rows, offset + batch)):
                tier, rank, queue = TIERS[rnd.choices(range(4), weights=[70, 5, 24, 1])[0]]
                user = users[i % len(users)]
                queued = now - dt.timedelta(minutes=rnd.randint(0, 60 * 24 * 30))
                content = {
                    "title": f"Bench application {i}",
                    "category": "other",
                    "domains": ["general"],
                }
                apps.append(
                    dict(
                        id=i + 1,
                        organization_id=user.organization_id,
                        submitter_id=user.id,
                        status="queued",
                        draft=content,
                        risk_tier=tier,
                        tier_rank=rank,
                        queue=queue,
                        flags=[],
                        queued_at=queued,
                        sla_due_at=queued + dt.timedelta(hours=24 if rank >= 2 else 72),
                        submitted_at=queued,
                        created_at=queued,
                        updated_at=queued,
                        version=1,
                    )
                )
            db.session.execute(insert(Application), apps)
            db.session.execute(
                insert(Revision),
                [
                    dict(
                        id=a["id"],
                        application_id=a["id"],
                        number=1,
                        content=a["draft"],
                        submitted_by_id=a["submitter_id"],
                        submitted_at=a["queued_at"],
                    )
                    for a in apps
                ],
            )
            db.session.execute(
                text(
                    "UPDATE application SET current_revision_id = id WHERE id BETWEEN :lo AND :hi"
                ),
                {"lo": apps[0]["id"], "hi": apps[-1]["id"]},
            )
            db.session.commit()
        db.session.execute(text("SELECT setval('application_id_seq', :n)"), {"n": rows})
        db.session.execute(text("SELECT setval('revision_id_seq', :n)"), {"n": rows})
        db.session.commit()
    # what autovacuum does in production after a bulk load: visibility map for index-only scans
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - start


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_bench"
    )
    args = parser.parse_args()
    recreate_postgres_database(args.database_url)
    upgrade_database(args.database_url)
    seconds = load(args.database_url, args.rows)
    print(f"loaded {args.rows:,} applications in {seconds:.1f} s")

    app = create_app("testing", DATABASE_URL=args.database_url)
    with app.app_context():
        staff = Organization(name="Bench T&S")
        db.session.add(staff)
        db.session.flush()
        reviewer = User(
            email="bench-reviewer@example.com",
            password_hash="!",  # noqa: S106 - disabled account
            role=Role.reviewer,
            organization_id=staff.id,
        )
        db.session.add(reviewer)
        db.session.commit()
        reviewer_id = reviewer.id
        engine = db.engine
    from flask_login import FlaskLoginClient

    app.test_client_class = FlaskLoginClient
    with app.app_context():
        user = db.session.get(User, reviewer_id)
        client = app.test_client(user=user)
    for query in ("", "?tier=high", "?page=100"):
        page_times = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            response = client.get("/queue" + query)
            page_times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        # the ceiling: the same 50 rows by the bare SQL the page runs, no ORM objects, no template
        with app.app_context():
            user = db.session.get(User, reviewer_id)
            filters = QueueFilters(tier="high") if "tier" in query else QueueFilters()
            stmt = (
                queue_statement(db.session, user, filters)
                .with_only_columns(Application.id)
                .offset(4950 if "page" in query else 0)
                .limit(50)
            )
            sql_times = []
            with engine.connect() as conn:
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    conn.execute(stmt).all()
                    sql_times.append((time.perf_counter() - t0) * 1000)
        p50, p95 = statistics.median(page_times), percentile(page_times, 95)
        s50 = statistics.median(sql_times)
        print(
            f"GET /queue{query:12} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   bare SQL p50 {s50:6.1f} ms   page/SQL {p50 / s50:5.1f}x"
        )
    _ = select


if __name__ == "__main__":
    main()
