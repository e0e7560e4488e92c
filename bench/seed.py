"""Bulk-load a realistic reviewapp database on PostgreSQL (for the benchmarks).

Usage::

    .venv/bin/python bench/seed.py --rows 1000000 \
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_bench_seed]

The database is dropped and recreated, the schema is built by the Alembic migrations (what
``flask init-db`` does), the reference data (tiers, queues, policies, templates, the default
ruleset) is seeded by the app's own ``seed_reference_data``, then ``--rows`` applications are
written with PostgreSQL ``COPY``:

* 500 organizations with 4 developers each; a staff organization with 100 reviewers
  (``reviewer000@bench.example`` …; the benchmarks use the first 64, the last 36 hold the
  seeded in-review claims), 8 senior reviewers and an admin. Passwords are disabled (``!``);
  the benchmarks sign session cookies or issue API tokens for these accounts.
* applications in a realistic mix of statuses: about 23 % waiting for a reviewer (queued),
  0.1 % in review (claimed, half of the leases expired), 1 % awaiting a second approval,
  0.5 % appealed, 4 % drafts, 9 % withdrawn and the rest decided (approved, rejected,
  mitigations requested) with their decision row;
* every non-draft application has one revision and one triage result: the content comes from
  a few templates run through the real default ruleset once each, so tier, queue, flags and
  fired rules are what triage would have stored (about 60 % low, 15 % medium, 22 % high,
  3 % prohibited);
* open applications carry a running business-hours SLA clock computed with the app's
  calendar (``review/sla.py``), queued over the last 30 days; decided ones a paused clock.

Secondary indexes are dropped during the load and rebuilt afterwards, and foreign-key triggers
are skipped (``session_replication_role = replica``) because the generated ids are consistent;
then ``VACUUM ANALYZE``. Other benchmarks import :func:`seed_database`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from reviewapp import create_app
from reviewapp.auth.models import Organization, Role, User
from reviewapp.cli import seed_reference_data, upgrade_database
from reviewapp.db import recreate_postgres_database
from reviewapp.extensions import db
from reviewapp.policies.models import ResponseTemplate
from reviewapp.review.models import RiskTier
from reviewapp.review.sla import add_business_seconds
from reviewapp.triage.services import active_ruleset, compiled_ruleset

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/reviewapp_bench_seed"
STAFF_ORG = "Bench Trust & Safety"
BENCH_REVIEWERS = 64  # reviewer000..063: free for the benchmarks (no seeded claims)
CLAIM_HOLDERS = 36  # reviewer064..099: hold the seeded in-review claims
SENIORS = 8
ORGS = 500
DEVELOPERS_PER_ORG = 4
DAY = dt.timedelta(days=1)

#: status -> share of all applications (in_review is a fixed share: reviewers hold few claims)
STATUS_MIX = {
    "queued": 0.23,
    "in_review": 0.001,
    "awaiting_second_approval": 0.01,
    "appealed": 0.005,
    "draft": 0.04,
    "withdrawn": 0.09,
    "mitigations_requested": 0.06,
    "rejected": 0.08,
    "approved": 0.484,
}
OUTCOME_OF = {
    "approved": "approve",
    "rejected": "reject",
    "mitigations_requested": "request_mitigations",
}
TIER_MIX = {"low": 0.60, "medium": 0.15, "high": 0.22, "prohibited": 0.03}

_LOW = {
    "title": "Meeting notes summarizer",
    "category": "search_summarization",
    "description": "Summarizes internal meeting transcripts into action items for our staff.",
    "benefits": "Saves staff time after meetings.",
    "end_users": ["internal_employees"],
    "domains": ["general"],
    "modalities": ["text"],
    "monthly_requests": 5000,
    "human_review_of_outputs": True,
    "safety_measures": "Outputs are reviewed by the meeting owner.",
    "product_url": "https://example.com/notes",
}
#: content templates; each is triaged once by the real default ruleset
TEMPLATES: list[dict[str, Any]] = [
    _LOW,
    {
        **_LOW,
        "title": "Code review assistant",
        "category": "code_generation",
        "description": "Suggests fixes in pull requests for our engineers.",
    },
    {
        **_LOW,
        "title": "Support chat for a bike shop",
        "category": "assistant_chatbot",
        "description": "Answers customer questions about opening hours and repairs.",
        "end_users": ["consumers"],
        "human_review_of_outputs": False,
    },
    {
        **_LOW,
        "title": "Product photo generator",
        "category": "image_generation",
        "description": "Generates synthetic product photos for an online catalogue.",
        "end_users": ["consumers"],
        "modalities": ["text", "image"],
    },
    {
        **_LOW,
        "title": "Symptom checker",
        "category": "assistant_chatbot",
        "description": "Tells patients whether their symptoms need a doctor and suggests a "
        "clinical diagnosis.",
        "domains": ["health"],
        "end_users": ["consumers"],
        "human_review_of_outputs": False,
    },
    {
        **_LOW,
        "title": "CV screening",
        "category": "classification",
        "description": "Ranks job applicants and rejects candidates automatically.",
        "domains": ["employment"],
        "end_users": ["businesses"],
        "human_review_of_outputs": False,
    },
    {
        **_LOW,
        "title": "Voter persuasion bot",
        "category": "assistant_chatbot",
        "description": "Sends voters false information about polling dates to suppress turnout "
        "in the election.",
        "domains": ["elections"],
        "end_users": ["consumers"],
        "human_review_of_outputs": False,
    },
    {
        **_LOW,
        "title": "Malware writer",
        "category": "code_generation",
        "description": "Writes ransomware and malware that evades antivirus detection.",
        "end_users": ["consumers"],
    },
]


@dataclass
class SeedResult:
    """What :func:`seed_database` wrote. ``seconds``: wall time of the whole seed."""

    database_url: str
    rows: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    reviewer_ids: list[int] = field(default_factory=list)  # free for benchmarks, in email order
    senior_ids: list[int] = field(default_factory=list)
    admin_id: int = 0
    developer_ids: list[int] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def psycopg_dsn(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _people(session: Any) -> tuple[list[int], list[int], list[int], int, list[tuple[int, int]]]:
    """Organizations and users through the ORM (a few thousand rows). Returns reviewer ids,
    senior ids, claim-holder ids, admin id and (developer id, organization id) pairs."""
    staff = Organization(name=STAFF_ORG)
    orgs = [Organization(name=f"Bench org {i:03d}") for i in range(ORGS)]
    session.add_all([staff, *orgs])
    session.flush()

    def user(email: str, role: Role, org: Organization) -> User:
        return User(
            email=email,
            name=email.split("@")[0],
            password_hash="!",  # noqa: S106 - no password: benchmarks sign sessions / tokens
            role=role,
            organization_id=org.id,
        )

    reviewers = [
        user(f"reviewer{i:03d}@bench.example", Role.reviewer, staff)
        for i in range(BENCH_REVIEWERS + CLAIM_HOLDERS)
    ]
    seniors = [
        user(f"senior{i:02d}@bench.example", Role.senior_reviewer, staff) for i in range(SENIORS)
    ]
    admin = user("admin@bench.example", Role.admin, staff)
    developers = [
        user(f"dev{i:03d}.{j}@bench.example", Role.developer, org)
        for i, org in enumerate(orgs)
        for j in range(DEVELOPERS_PER_ORG)
    ]
    session.add_all([*reviewers, *seniors, admin, *developers])
    session.flush()
    return (
        [u.id for u in reviewers[:BENCH_REVIEWERS]],
        [u.id for u in seniors],
        [u.id for u in reviewers[BENCH_REVIEWERS:]],
        admin.id,
        [(u.id, u.organization_id) for u in developers],
    )


def _triaged_templates(session: Any) -> tuple[int, list[tuple[dict[str, Any], Any]]]:
    """Run every template through the active ruleset; returns (ruleset version id,
    [(template, outcome)]). Raises RuntimeError when a tier of TIER_MIX is never produced."""
    version = active_ruleset(session)
    compiled = compiled_ruleset(session, version)
    triaged = [(t, compiled.evaluate(t)) for t in TEMPLATES]
    missing = set(TIER_MIX) - {o.tier for _, o in triaged}
    if missing:
        raise RuntimeError(f"no content template triages to {sorted(missing)}; add one")
    return version.id, triaged


def seed_database(
    database_url: str, rows: int, *, seed: int = 42, quiet: bool = False
) -> SeedResult:
    """Recreate the database at ``database_url`` and fill it with ``rows`` applications.

    Args:
        database_url: a ``postgresql+psycopg://`` URL; the database is dropped first.
        rows: number of applications (each non-draft one with a revision and a triage result).
        seed: random seed, so two runs write the same data.
        quiet: no progress lines on stdout.
    Returns:
        SeedResult with counts, elapsed seconds and the ids of the benchmark accounts.
    """
    say = (lambda *_: None) if quiet else functools.partial(print, flush=True)
    start = time.perf_counter()
    recreate_postgres_database(database_url)
    upgrade_database(database_url)
    app = create_app("testing", DATABASE_URL=database_url)
    with app.app_context():
        seed_reference_data(db.session, Path(app.config["SEED_DIR"]))
        reviewer_ids, senior_ids, holder_ids, admin_id, developers = _people(db.session)
        ruleset_id, triaged = _triaged_templates(db.session)
        tiers = {t.name: t for t in db.session.scalars(select(RiskTier))}
        tier_info = {n: (t.rank, int(round(t.sla_hours * 3600))) for n, t in tiers.items()}
        template_ids = {
            o: db.session.scalar(
                select(ResponseTemplate.id).where(ResponseTemplate.outcome == o).limit(1)
            )
            for o in ("approve", "reject", "request_mitigations")
        }
        db.session.commit()
        from reviewapp.review.clock import business_calendar

        calendar = business_calendar()
    say(f"schema and reference data: {time.perf_counter() - start:.1f} s")

    @functools.cache
    def due(queued_minute: dt.datetime, target_seconds: int) -> dt.datetime:
        return add_business_seconds(calendar, queued_minute, target_seconds)

    # weight each template so that the tiers come out in TIER_MIX proportions
    by_tier: dict[str, list[int]] = {}
    for index, (_, outcome) in enumerate(triaged):
        by_tier.setdefault(outcome.tier, []).append(index)
    weights = [TIER_MIX.get(o.tier, 0.0) / len(by_tier[o.tier]) for _, o in triaged]
    fired_json = [
        (
            json.dumps([f.as_dict() for f in o.fired]),
            json.dumps(list(o.flags)),
            json.dumps(list(o.safety_requirements)),
            json.dumps(list(o.policy_sections)),
            json.dumps(list(o.errors)),
        )
        for _, o in triaged
    ]

    def flags_json_of(index: int) -> str:
        return fired_json[index][1]

    statuses = list(STATUS_MIX)
    status_weights = [STATUS_MIX[s] for s in statuses]
    rnd = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    staff = [*reviewer_ids, *holder_ids]
    counts = {"application": 0, "revision": 0, "triage_result": 0, "decision": 0, "appeal": 0}
    load_start = time.perf_counter()
    next_decision = 1
    with psycopg.connect(psycopg_dsn(database_url)) as conn:
        conn.execute("SET session_replication_role = replica")  # skip FK triggers
        dropped = _drop_secondary_indexes(conn)
        for chunk_start in range(1, rows + 1, CHUNK):
            tables: dict[str, list[tuple[Any, ...]]] = {t: [] for t in COLUMNS}
            apps, revisions, results = (
                tables["application"],
                tables["revision"],
                tables["triage_result"],
            )
            decisions, appeals = tables["decision"], tables["appeal"]
            for app_id in range(chunk_start, min(rows, chunk_start + CHUNK - 1) + 1):
                status = rnd.choices(statuses, status_weights)[0]
                dev_id, org_id = developers[rnd.randrange(len(developers))]
                t_index = rnd.choices(range(len(triaged)), weights)[0]
                template, outcome = triaged[t_index]
                content_json = json.dumps(dict(template, title=f"{template['title']} {app_id}"))
                is_open = status in ("queued", "in_review", "awaiting_second_approval", "appealed")
                age = dt.timedelta(minutes=rnd.randint(0, 60 * 24 * (30 if is_open else 365)))
                queued_at = now - age
                created_at = queued_at - dt.timedelta(minutes=rnd.randint(5, 600))
                if status == "draft":
                    apps.append(
                        (app_id, org_id, dev_id, status, content_json, None, None, None, None,
                         "[]", None, None, None, None, None, 0, None, None, None,
                         created_at, created_at, 1)
                    )  # fmt: skip
                    continue
                rank, target = tier_info[outcome.tier]
                reviewer = staff[app_id % len(staff)]
                revisions.append((app_id, app_id, 1, content_json, dev_id, queued_at))
                results.append((app_id, app_id, ruleset_id, outcome.tier, outcome.queue, *fired_json[t_index], queued_at, False))  # fmt: skip
                claimed_by = lease = sla_due = running_since = last_decision = None
                consumed = 0
                queue = outcome.queue
                if is_open:
                    sla_due, running_since = due(queued_at, target), queued_at
                    if status == "in_review":
                        claimed_by = holder_ids[app_id % len(holder_ids)]
                        lease = now + dt.timedelta(minutes=rnd.randint(-60, 30))
                    elif status == "awaiting_second_approval":
                        decisions.append((next_decision, app_id, app_id, "approve", reviewer, template_ids["approve"], "First approval.", 1, False, queued_at + DAY, ""))  # fmt: skip
                        next_decision += 1
                    elif status == "appealed":
                        queue = "appeals"
                        decisions.append((next_decision, app_id, app_id, "reject", reviewer, template_ids["reject"], "Rejected.", 1, True, queued_at, ""))  # fmt: skip
                        appeals.append((app_id, app_id, app_id, next_decision, "We think the rejection misread our safeguards.", dev_id, queued_at))  # fmt: skip
                        last_decision = next_decision
                        next_decision += 1
                elif status in OUTCOME_OF:
                    consumed = min(target, rnd.randint(600, target + 3600))
                    name = OUTCOME_OF[status]
                    decisions.append((next_decision, app_id, app_id, name, reviewer, template_ids[name], "Bench decision.", 1, True, queued_at + DAY, ""))  # fmt: skip
                    last_decision = next_decision
                    next_decision += 1
                else:  # withdrawn
                    consumed = rnd.randint(0, target)
                apps.append(
                    (app_id, org_id, dev_id, status, content_json, app_id, outcome.tier, rank,
                     queue, flags_json_of(t_index), claimed_by, lease, queued_at, sla_due, target,
                     consumed, running_since, queued_at, last_decision, created_at, queued_at, 2)
                )  # fmt: skip
            with conn.cursor() as cur:
                for table, data in tables.items():
                    with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                        for row in data:
                            copy.write_row(row)
                    counts[table] += len(data)
            conn.commit()
            done = min(rows, chunk_start + CHUNK - 1)
            if done % 200_000 == 0 or done == rows:
                say(f"  {done:,} applications loaded ({time.perf_counter() - load_start:.0f} s)")
        for table in ("application", "revision", "triage_result", "decision", "appeal"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - fixed names
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        conn.commit()
        index_start = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for definition in dropped:
            conn.execute(definition)  # type: ignore[arg-type]
        conn.commit()
        say(f"  {len(dropped)} indexes rebuilt ({time.perf_counter() - index_start:.0f} s)")
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        # what autovacuum does in production after a bulk load (statistics, visibility map)
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return SeedResult(
        database_url=database_url,
        rows=rows,
        seconds=time.perf_counter() - start,
        counts=counts,
        reviewer_ids=reviewer_ids,
        senior_ids=senior_ids,
        admin_id=admin_id,
        developer_ids=[d for d, _ in developers],
    )


CHUNK = 50_000
#: COPY column lists of the bulk-loaded tables, in load order
COLUMNS = {
    "application": "id, organization_id, submitter_id, status, draft, current_revision_id, "
    "risk_tier, tier_rank, queue, flags, claimed_by_id, lease_expires_at, queued_at, sla_due_at, "
    "sla_target_seconds, sla_consumed_seconds, sla_running_since, submitted_at, "
    "last_decision_id, created_at, updated_at, version",
    "revision": "id, application_id, number, content, submitted_by_id, submitted_at",
    "triage_result": "id, revision_id, ruleset_version_id, tier, queue, fired, flags, "
    "required_safety_requirements, suggested_policy_sections, errors, created_at, shadow",
    "decision": "id, application_id, revision_id, outcome, reviewer_id, template_id, message, "
    "approval_step, final, decided_at, rationale",
    "appeal": "id, application_id, revision_id, decision_id, statement, created_by_id, created_at",
}
BULK_TABLES = tuple(COLUMNS)


def _drop_secondary_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the indexes of the bulk-loaded tables that back no constraint (they are faster to
    build once after the load); returns their CREATE INDEX statements."""
    rows = conn.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY(%s::regclass[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        (list(BULK_TABLES),),
    ).fetchall()
    for name, _ in rows:
        conn.execute(f"DROP INDEX {name}")  # type: ignore[arg-type]
    conn.commit()
    return [definition for _, definition in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    result = seed_database(args.database_url, args.rows, seed=args.seed)
    print(
        f"seeded {result.rows:,} applications in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} applications/s); "
        + ", ".join(f"{k} {v:,}" for k, v in result.counts.items())
    )


if __name__ == "__main__":
    main()
