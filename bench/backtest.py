"""Backtest throughput at scale: N revisions, a modified draft, two real RQ workers.

Usage::

    .venv/bin/python bench/backtest.py [--rows 100000] [--chunk-size 2000] [--workers 2]
        [--database-url URL] [--redis-url URL] [--csv PATH] [--keep]

What it does, in order:

1. Drops and recreates the PostgreSQL database (default ``reviewapp_bench_bt``), migrates it
   (``upgrade_database``) and seeds the reference data (tiers, queues, default ruleset).
2. Bulk-loads ``--rows`` applications with one revision each (PostgreSQL ``COPY``): contents
   cycle through the rows of the federal AI inventory mapped by
   ``reviewapp.applications.importer.map_row`` with varied titles; organizations per agency;
   the inventory's suggested tier as the reference tier; every tenth application decided
   (approve / request_mitigations / reject) on its current revision. Each revision gets the
   active ruleset's triage result (computed with the engine, written in bulk), so the baseline
   is read, not recomputed, as in production.
3. Creates a draft: the active ruleset plus two rules (general-domain uses at least medium;
   no human review of outputs at least high).
4. Starts a backtest with ``--chunk-size`` on an RQ queue prefix of its own, runs ``--workers``
   ``flask --app wsgi worker --burst`` subprocesses, prints progress every second and samples
   the resident memory of the workers and of the work-horse processes RQ forks for each job
   (``VmHWM`` from ``/proc``, every 0.2 s).
5. Prints total seconds (commit of the start to status done), revisions per second, the peak
   RSS of a worker and of a work horse, and a summary of the result.

Targets: 100,000 revisions in under 3 minutes with 2 workers; worker memory under 500 MB.
Exit status 0 when the backtest ends done with processed == total, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from reviewapp import create_app  # noqa: E402
from reviewapp.applications.importer import map_row  # noqa: E402
from reviewapp.auth.models import Organization, Role, User  # noqa: E402
from reviewapp.cli import seed_reference_data, upgrade_database  # noqa: E402
from reviewapp.db import recreate_postgres_database  # noqa: E402
from reviewapp.extensions import db  # noqa: E402
from reviewapp.review.models import RiskTier  # noqa: E402
from reviewapp.triage.backtest import backtest_progress, start_backtest  # noqa: E402
from reviewapp.triage.models import Backtest  # noqa: E402
from reviewapp.triage.services import (  # noqa: E402
    active_ruleset,
    compiled_ruleset,
    create_ruleset_version,
    ruleset_document,
)

DEFAULT_CSV = Path("/work/shared/data/fed_ai_inventory_2024_slim.csv")
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_bench_bt"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
OUTCOME_STATUS = {
    "approve": "approved",
    "request_mitigations": "mitigations_requested",
    "reject": "rejected",
}
EXTRA_RULES = [
    {
        "key": "bench_general_medium",
        "name": "General-domain uses are at least medium",
        "description": "Benchmark draft rule.",
        "condition": "'general' in domains",
        "actions": [{"type": "raise_tier", "tier": "medium"}],
        "enabled": True,
        "examples": {},
    },
    {
        "key": "bench_no_human_review_high",
        "name": "No human review of outputs is high",
        "description": "Benchmark draft rule.",
        "condition": "human_review_of_outputs == false",
        "actions": [{"type": "raise_tier", "tier": "high"}],
        "enabled": True,
        "examples": {},
    },
]
TITLE_VARIANTS = ("", " (pilot)", " v2", " for field offices", " (regional rollout)", " phase 3")


def log(message: str) -> None:
    print(message, flush=True)


def inventory(path: Path) -> list[Any]:
    records = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                records.append(map_row(row))
            except ValueError:
                continue
    if not records:
        raise SystemExit(f"no usable rows in {path}")
    return records


def load_data(app: Any, rows: int, records: list[Any]) -> None:
    """Organizations, users, N applications + revisions + baseline triage results, decisions."""
    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        session = db.session
        tiers = {t.name: t for t in session.scalars(select(RiskTier))}
        orgs: dict[str, tuple[int, int]] = {}
        for name in sorted({r.organization for r in records}):
            org = Organization(name=name)
            session.add(org)
            session.flush()
            user = User(
                email=f"dev{org.id}@bench.example",
                name=f"Developer {org.id}",
                password_hash="!",  # noqa: S106 - no login: not a valid Argon2 hash
                role=Role.developer,
                organization_id=org.id,
            )
            session.add(user)
            session.flush()
            orgs[name] = (org.id, user.id)
        staff = Organization(name="Bench trust and safety")
        session.add(staff)
        session.flush()
        reviewer = User(
            email="reviewer@bench.example",
            name="Reviewer",
            password_hash="!",  # noqa: S106 - no login: not a valid Argon2 hash
            role=Role.reviewer,
            organization_id=staff.id,
        )
        session.add(reviewer)
        session.flush()
        version = active_ruleset(session)
        compiled = compiled_ruleset(session, version)
        version_id, reviewer_id = version.id, reviewer.id
        db.commit()

    engine = db.state(app).engine
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        t0 = time.perf_counter()
        outcomes = list(OUTCOME_STATUS)
        with cur.copy(
            "COPY application (id, organization_id, submitter_id, status, draft, "
            "risk_tier, tier_rank, queue, flags, queued_at, sla_due_at, submitted_at, "
            "reference_label, reference_tier, source_metadata, created_at, updated_at, "
            "version) FROM STDIN"
        ) as apps_copy:
            revisions: list[tuple[Any, ...]] = []
            results: list[tuple[Any, ...]] = []
            decisions: list[tuple[Any, ...]] = []
            for i in range(1, rows + 1):
                record = records[(i - 1) % len(records)]
                cycle = (i - 1) // len(records)
                content = dict(record.content)
                content["title"] = (
                    f"{content['title']}{TITLE_VARIANTS[cycle % len(TITLE_VARIANTS)]}"
                    + (f" #{cycle}" if cycle >= len(TITLE_VARIANTS) else "")
                )[:200]
                outcome = compiled.evaluate(content)
                tier = tiers[outcome.tier]
                org_id, user_id = orgs[record.organization]
                if i % 10 == 0:  # decided on this revision; status set with last_decision_id
                    decisions.append(
                        (i, i, i, outcomes[(i // 10) % 3], reviewer_id, "Decided.", "", 1, now)
                    )
                body = json.dumps(content)
                apps_copy.write_row(
                    (
                        i,
                        org_id,
                        user_id,
                        "queued",
                        body,
                        tier.name,
                        tier.rank,
                        outcome.queue,
                        json.dumps(outcome.flags),
                        now,
                        now + dt.timedelta(hours=tier.sla_hours),
                        now,
                        record.reference_label,
                        record.reference_tier,
                        json.dumps(record.source_metadata),
                        now,
                        now,
                        1,
                    )
                )
                revisions.append((i, i, 1, body, user_id, now))
                results.append(
                    (
                        i,
                        version_id,
                        outcome.tier,
                        outcome.queue,
                        json.dumps([f.as_dict() for f in outcome.fired]),
                        json.dumps(outcome.flags),
                        json.dumps(outcome.safety_requirements),
                        json.dumps(outcome.policy_sections),
                        json.dumps(outcome.errors),
                        False,
                        now,
                    )
                )
                if i % 20000 == 0:
                    log(
                        f"  evaluated and copied {i} applications ({time.perf_counter() - t0:.0f}s)"
                    )
        with cur.copy(
            "COPY revision (id, application_id, number, content, submitted_by_id, submitted_at) "
            "FROM STDIN"
        ) as copy_rev:
            for row in revisions:
                copy_rev.write_row(row)
        with cur.copy(
            "COPY triage_result (revision_id, ruleset_version_id, tier, queue, fired, flags, "
            "required_safety_requirements, suggested_policy_sections, errors, shadow, "
            "created_at) FROM STDIN"
        ) as copy_res:
            for row in results:
                copy_res.write_row(row)
        with cur.copy(
            "COPY decision (id, application_id, revision_id, outcome, reviewer_id, message, "
            "rationale, approval_step, decided_at) FROM STDIN"
        ) as copy_dec:
            for row in decisions:
                copy_dec.write_row(row)
        cur.execute("UPDATE application SET current_revision_id = id")
        cases = " ".join(f"WHEN '{o}' THEN '{s}'" for o, s in OUTCOME_STATUS.items())
        decided = f"UPDATE application a SET last_decision_id = d.id, status = CASE d.outcome {cases} END FROM decision d WHERE d.application_id = a.id"  # noqa: E501, S608 - constants only
        cur.execute(decided)
        for table in ("application", "revision", "decision"):
            sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: E501, S608 - constant table names
            cur.execute(sql)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
        log(f"  loaded {rows} applications in {time.perf_counter() - t0:.1f}s")
    finally:
        raw.close()


def make_draft(app: Any) -> int:
    with app.app_context():
        session = db.session
        document = copy.deepcopy(ruleset_document(active_ruleset(session)))
        document["rules"].extend(copy.deepcopy(EXTRA_RULES))
        draft = create_ruleset_version(session, document, actor=None)
        db.commit()
        return draft.id


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(c) for c in handle.read().split())
    except OSError:
        pass
    return found


def vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--timeout", type=int, default=900, help="seconds before giving up")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    prefix = f"bench-bt-{uuid.uuid4().hex[:8]}"
    log(f"database {make_url(args.database_url).database}: recreate, migrate, seed")
    recreate_postgres_database(args.database_url)
    upgrade_database(args.database_url)
    app = create_app(
        "default",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        RQ_QUEUE_PREFIX=prefix,
        SECRET_KEY="bench-only",  # noqa: S106
    )
    with app.app_context():
        seed_reference_data(db.session, ROOT / "config")
        db.commit()
    records = inventory(args.csv)
    log(f"loading {args.rows} applications from {len(records)} inventory rows")
    load_data(app, args.rows, records)
    draft_id = make_draft(app)

    env = dict(os.environ)
    env.update(
        REVIEWAPP_CONFIG="default",
        REVIEWAPP_SECRET_KEY="bench-only",  # noqa: S106
        REVIEWAPP_DATABASE_URL=args.database_url,
        REVIEWAPP_REDIS_URL=args.redis_url,
        REVIEWAPP_RQ_QUEUE_PREFIX=prefix,
    )
    with app.app_context():
        from reviewapp.triage.models import RulesetVersion

        session = db.session
        draft = session.get(RulesetVersion, draft_id)
        assert draft is not None
        t_start = time.perf_counter()
        backtest = start_backtest(session, None, draft, chunk_size=args.chunk_size)
        backtest_id = backtest.id
        log(f"backtest {backtest_id}: {backtest.total} revisions in {backtest.chunks_total} chunks")
        db.commit()  # enqueues the chunk jobs
        t_enqueued = time.perf_counter()
    log(f"  started and enqueued in {t_enqueued - t_start:.1f}s; starting {args.workers} workers")
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.workers)
    ]
    peak_worker_kb = 0
    peak_horse_kb = 0
    horses: set[int] = set()
    last_print = 0.0
    progress: dict[str, Any] = {}
    deadline = time.perf_counter() + args.timeout
    try:
        while time.perf_counter() < deadline:
            for worker in workers:
                peak_worker_kb = max(peak_worker_kb, vm_hwm_kb(worker.pid))
                for child in children(worker.pid):
                    horses.add(child)
                    peak_horse_kb = max(peak_horse_kb, vm_hwm_kb(child))
            now = time.perf_counter()
            if now - last_print >= 1.0:
                last_print = now
                with app.app_context():
                    row = db.session.get(Backtest, backtest_id)
                    assert row is not None
                    progress = backtest_progress(row)
                log(
                    f"  {now - t_start:6.1f}s  {progress['percent']:5.1f}%  "
                    f"{progress['processed']}/{progress['total']}  {progress['status']}"
                )
                if progress["status"] in ("done", "failed"):
                    break
                if all(w.poll() is not None for w in workers):
                    break
            time.sleep(0.2)
    finally:
        pass
    with app.app_context():
        row = db.session.get(Backtest, backtest_id)
        assert row is not None
        progress = backtest_progress(row)
        finished_at = row.finished_at
        started_at = row.started_at
        result = row.result or {}
    total_s = time.perf_counter() - t_start
    for worker in workers:
        try:
            _out, err = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            _out, err = worker.communicate()
        if worker.returncode != 0:
            log(f"worker {worker.pid} exited {worker.returncode}: {err[-2000:]}")

    log("")
    log(f"status           {progress['status']}  error={progress['error']}")
    log(f"processed/total  {progress['processed']}/{progress['total']}")
    if started_at and finished_at:
        log(f"first job -> done {(finished_at - started_at).total_seconds():.1f}s (database clock)")
    log(f"total seconds    {total_s:.1f} (start_backtest to status done, incl. worker start)")
    log(f"revisions/second {progress['processed'] / total_s:.0f}")
    log(f"peak RSS worker  {peak_worker_kb / 1024:.0f} MB (VmHWM of the worker processes)")
    log(
        f"peak RSS horse   {peak_horse_kb / 1024:.0f} MB "
        f"(VmHWM of {len(horses)} forked work horses, one per job)"
    )
    if result:
        log(f"changed          {result['changed']}  rule errors {result['errors']}")
        log("matrix (baseline -> new):")
        for old, row_counts in result["matrix"].items():
            log(f"  {old:>10}: " + "  ".join(f"{t}={n}" for t, n in row_counts.items()))
        log(f"decisions        {json.dumps(result['decisions'])}")
        ref = result["reference"]
        log(
            f"reference        labelled={ref['labelled']} high_recall={ref['high_recall']} "
            f"low_raised_share={ref['low_raised_share']}"
        )
    if not args.keep:
        recreate_postgres_database(
            args.database_url
        )  # leave an empty database behind, not 100k rows
    ok = progress["status"] == "done" and progress["processed"] == progress["total"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
