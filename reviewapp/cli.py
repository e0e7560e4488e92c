"""``flask --app wsgi …`` commands: init-db, seed, import-policies, import-applications,
create-user, demo, worker, dispatch-outbox."""

from __future__ import annotations

import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from reviewapp import ROOT


def register_cli(app: Flask) -> None:
    """Attach the commands to ``app.cli``."""
    from reviewapp.triage.cli import ruleset_cli, triage_eval

    app.cli.add_command(ruleset_cli)
    app.cli.add_command(triage_eval)
    for command in (
        init_db,
        seed,
        import_policies,
        import_applications,
        create_user_cmd,
        demo,
        worker,
        dispatch_outbox,
        sweep,
        audit_cli,
    ):
        app.cli.add_command(command)


def fail(message: str, code: int = 1) -> None:
    """Print ``message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def alembic_config(database_url: str) -> Any:
    """An Alembic Config pointing at migrations/ and ``database_url``."""
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Create or upgrade the schema through the Alembic migrations."""
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or upgrade the database schema (Alembic upgrade head)."""
    upgrade_database(current_app.config["DATABASE_URL"])
    click.echo("database schema is at the newest migration")


def seed_reference_data(session: Any, seed_dir: Path) -> dict[str, int]:
    """Tiers, queues, policy sections, safety requirements, response templates and (when none is
    published yet) the default ruleset from ``seed_dir``. Idempotent."""
    from reviewapp.policies.services import import_policy_library, seed_catalogues
    from reviewapp.review.models import Queue, RiskTier
    from reviewapp.review.tiers import tier_policy_problems
    from reviewapp.textfiles import load_yaml_file
    from reviewapp.triage.models import RulesetVersion
    from reviewapp.triage.ruleset_file import load_ruleset_yaml
    from reviewapp.triage.services import create_ruleset_version

    tiers_doc = load_yaml_file(seed_dir / "tiers.yaml")
    for position, raw in enumerate(tiers_doc["queues"]):
        q = session.scalars(select(Queue).where(Queue.key == raw["key"])).first() or Queue(
            key=raw["key"]
        )
        q.title, q.description, q.roles, q.position = (
            raw["title"],
            raw.get("description", ""),
            list(raw["roles"]),
            position,
        )
        session.add(q)
    for rank, raw in enumerate(tiers_doc["tiers"]):
        t = session.scalars(select(RiskTier).where(RiskTier.name == raw["name"])).first()
        if t is None:
            t = RiskTier(name=raw["name"], rank=rank)
            session.add(t)
        t.label, t.description = raw["label"], raw.get("description", "")
        t.sla_hours, t.approvals_required, t.default_queue = (
            int(raw["sla_hours"]),
            int(raw["approvals_required"]),
            raw["default_queue"],
        )
        t.auto_approve = bool(raw.get("auto_approve", False))
        t.qa_sample_rate = float(raw.get("qa_sample_rate", 0.0))
        if not 0.0 <= t.qa_sample_rate <= 1.0:
            raise ValueError(f"tier {t.name!r}: qa_sample_rate must be between 0 and 1")
    session.flush()
    every_tier = list(session.scalars(select(RiskTier)))
    for t in every_tier:
        others = [o for o in every_tier if o is not t]
        if problems := tier_policy_problems(t, others, t.approvals_required, t.auto_approve):
            raise ValueError(f"tier {t.name!r}: {' '.join(problems.values())}")
    seed_catalogues(session, seed_dir)
    policies = import_policy_library(session, seed_dir / "policy_sections.yaml")
    if policies.problems:
        line, problem = policies.problems[0]
        raise ValueError(f"policy_sections.yaml, line {line}: {problem}")
    sections = policies.seen
    created_ruleset = 0
    if session.scalars(select(RulesetVersion)).first() is None:
        create_ruleset_version(
            session, load_ruleset_yaml(seed_dir / "ruleset.yaml"), actor=None, publish=True
        )
        created_ruleset = 1
    return {
        "tiers": len(tiers_doc["tiers"]),
        "queues": len(tiers_doc["queues"]),
        "policy_sections": sections,
        "rulesets_created": created_ruleset,
    }


@click.command("seed")
@with_appcontext
def seed() -> None:
    """Load tiers, queues, policies, safety requirements, templates and the default ruleset."""
    from reviewapp.errors import ValidationFailed
    from reviewapp.extensions import db
    from reviewapp.textfiles import InputFileError
    from reviewapp.triage.engine import RuleValidationError

    try:
        counts = seed_reference_data(db.session, Path(current_app.config["SEED_DIR"]))
    except RuleValidationError as exc:
        db.rollback()
        fail(f"default ruleset is invalid: {exc}")
    except InputFileError as exc:
        db.rollback()
        fail(str(exc))
    except ValidationFailed as exc:
        db.rollback()
        fail(exc.message)
    except (KeyError, TypeError) as exc:
        db.rollback()
        fail(f"a seed file lacks a key or has a value of the wrong type: {exc!r}")
    db.commit()
    click.echo("seeded: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@click.command("import-policies")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_policies(path: str) -> None:
    """Import a policy library YAML (ours, or shared/data/policy_sections.yaml).

    Bad sections are listed on stderr ("<path>: line N: section #i ('id') problem") and
    skipped; the others are imported. Exit status 1 when any section was bad or the file as a
    whole is unusable (then nothing is imported)."""
    from reviewapp.errors import ValidationFailed
    from reviewapp.extensions import db
    from reviewapp.policies.services import import_policy_library

    try:
        result = import_policy_library(db.session, path)
    except ValidationFailed as exc:
        db.rollback()
        fail(exc.message)
    db.commit()
    for line, problem in result.problems:
        where = f"line {line}: " if line is not None else ""
        click.echo(f"{path}: {where}{problem}", err=True)
    click.echo(
        f"{result.seen} policy sections read, {result.changed} created or given a new version"
        + (f", {len(result.problems)} skipped" if result.problems else "")
    )
    if result.problems:
        sys.exit(1)  # the good sections are kept (committed); the exit code says some were not


def _importer_user(session: Any, org_name: str, cache: dict[str, Any]) -> Any:
    from reviewapp.auth.models import Role, User
    from reviewapp.auth.services import get_or_create_organization

    if org_name in cache:
        return cache[org_name]
    org, _ = get_or_create_organization(session, org_name)
    slug = re.sub(r"[^a-z0-9]+", "-", org_name.lower()).strip("-")[:40] or "org"
    email = f"import+{slug}-{org.id}@reviewapp.invalid"  # the id keeps look-alike names apart
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        user = User(
            email=email,
            name=f"Inventory import ({org_name})",
            role=Role.developer,
            organization=org,
            active=False,
            password_hash="!disabled",  # noqa: S106 - not a hash: no password can match it  # nosec B106
        )
        session.add(user)
        session.flush()
    cache[org_name] = user
    return user


#: where each compared field of an imported application comes from in the slim CSV, in the
#: CSV's column order (a difference is reported in the columns' terms)
_SOURCE_COLUMNS = {
    "organization": "agency",
    "agency_abbr": "agency_abbr",
    "bureau": "bureau",
    "title": "use_case_name",
    "topic_area": "topic_area",
    "domains": "topic_area/contains_pii",
    "commercial_ai_category": "commercial_ai_category",
    "category": "commercial_ai_category",
    "description": "purpose_benefits/outputs",
    "stage": "stage",
    "reference_label": "impact_label",
    "reference_tier": "suggested_tier",
    "end_users": "public_facing_hisp",
    "safety_measures": "key_risks/appeal_process",
    "human_review_of_outputs": "autonomous_decision",
}


def _imported_state(
    organization_key: str,
    label: str | None,
    tier: str | None,
    metadata: dict[str, Any] | None,
    content: dict[str, Any],
) -> dict[str, Any]:
    """What an import writes for one row, flattened for comparison. ``organization_key`` is
    the organization name as get_or_create_organization matches it (normalised, lower case)."""
    state: dict[str, Any] = {
        "organization": organization_key,
        "reference_label": label,
        "reference_tier": tier,
    }
    state.update({key: value for key, value in (metadata or {}).items()})
    state.update({key: value for key, value in content.items()})
    return state


def _differing_columns(stored: dict[str, Any], incoming: dict[str, Any]) -> list[str]:
    """Source columns (as the CSV names them) whose imported value differs."""
    columns: list[str] = []
    known = [key for key in _SOURCE_COLUMNS if key in stored or key in incoming]
    for key in known + sorted((set(stored) | set(incoming)) - set(known)):
        if stored.get(key) != incoming.get(key):
            column = _SOURCE_COLUMNS.get(key, key)
            if column not in columns:
                columns.append(column)
    return columns


def _stored_imports(session: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """external_ref -> (APP reference, imported state) of every imported application. The
    content is the first revision's (what the import submitted), not the current one: a
    developer's later resubmission is not a difference in the source row."""
    from sqlalchemy import and_

    from reviewapp.applications.models import Application, Revision
    from reviewapp.auth.models import Organization

    rows = session.execute(
        select(
            Application.id,
            Application.external_ref,
            Organization.name,
            Application.reference_label,
            Application.reference_tier,
            Application.source_metadata,
            Revision.content,
            Application.draft,
        )
        .join(Organization, Organization.id == Application.organization_id)
        .outerjoin(Revision, and_(Revision.application_id == Application.id, Revision.number == 1))
        .where(Application.external_ref.is_not(None))
    ).all()
    return {
        ref: (
            f"APP-{app_id:06d}",
            _imported_state(org.lower(), label, tier, metadata, content or draft or {}),
        )
        for app_id, ref, org, label, tier, metadata, content, draft in rows
    }


def import_inventory(
    session: Any, path: str | Path, *, commit: Any, progress: bool = True, limit: int | None = None
) -> dict[str, Any]:
    """Import the inventory's slim CSV: one organization per agency, one submitted (and
    triaged) application per row.

    Every record read lands in exactly one of four outcomes: created; already present (an
    application with the same external_ref holds the same imported values: skipped); already
    present with different values (``conflicts``: reported, the stored application is not
    changed, since it may be under review or decided); bad (``errors``: unreadable or invalid,
    skipped). ``read == created + skipped + len(conflicts) + len(errors)``.

    A label value outside the known vocabulary (``impact_label`` not in the data set's labels,
    ``suggested_tier`` not a risk tier in the database) is left empty and listed in
    ``dropped``; the row itself is imported.

    Returns:
        {"read", "created", "skipped", "conflicts": [(line, message)], "errors": [(line,
        message)], "dropped": [(line, message)], "notices": [(line, message)], "seconds"};
        ``line`` is the physical line (1-based, header = 1) where the record starts.

    Raises:
        click.UsageError: the header is unreadable or lacks required columns (nothing imported).
    """
    from reviewapp.applications.importer import (
        REQUIRED_COLUMNS,
        CsvFileError,
        map_row,
        read_csv_records,
    )
    from reviewapp.applications.schema import clean_content
    from reviewapp.applications.services import create_application, submit_application
    from reviewapp.auth.services import normalise_name
    from reviewapp.errors import DomainError
    from reviewapp.triage.services import tiers_in_order

    start = time.perf_counter()
    stored = _stored_imports(session)
    tiers = [t.name for t in tiers_in_order(session)]
    errors: list[tuple[int, str]] = []
    conflicts: list[tuple[int, str]] = []
    dropped: list[tuple[int, str]] = []
    notices: list[tuple[int, str]] = []
    created = skipped = 0
    users: dict[str, Any] = {}
    first_line: dict[str, int] = {}  # external_ref -> line, for rows created by this import
    rows = []
    try:
        for line, row, problem in read_csv_records(path, REQUIRED_COLUMNS):
            if row is None:
                errors.append((line, problem or "unreadable record"))
                continue
            rows.append((line, row))
            if limit and len(rows) >= limit:
                break
    except CsvFileError as exc:
        raise click.UsageError(str(exc)) from None
    bar = click.progressbar(rows, label="importing", file=sys.stderr) if progress else None
    iterator = bar if bar is not None else rows
    if bar is not None:
        bar.__enter__()
    try:
        for line, row in iterator:
            try:
                record = map_row(row, tiers=tiers)
                dropped.extend((line, problem) for problem in record.dropped)
                content = _content_for_submit(
                    clean_content(record.content, for_submit=False), clean_content
                )
                incoming = _imported_state(
                    normalise_name(record.organization).lower(),
                    record.reference_label,
                    record.reference_tier,
                    record.source_metadata,
                    content,
                )
                if record.external_ref in stored:
                    reference, before = stored[record.external_ref]
                    differing = _differing_columns(before, incoming)
                    if not differing:
                        skipped += 1
                    else:
                        origin = first_line.get(record.external_ref)
                        conflicts.append(
                            (
                                line,
                                f"row_id {record.external_ref.removeprefix('fed2024-')} was "
                                f"already imported as {reference}"
                                + (f" from line {origin} of this file" if origin else "")
                                + f" with different content ({', '.join(differing)} "
                                + ("differs" if len(differing) == 1 else "differ")
                                + "); not changed",
                            )
                        )
                    continue
                user = _importer_user(session, record.organization, users)
                with session.begin_nested():
                    application = create_application(session, user, record.content)
                    application.external_ref = record.external_ref
                    application.reference_label = record.reference_label
                    application.reference_tier = record.reference_tier
                    application.source_metadata = record.source_metadata
                    application.draft = _content_for_submit(application.draft)
                    submit_application(
                        session, user, application, require_complete=False, notify=False
                    )
                notices.extend((line, note) for note in record.notices)
                stored[record.external_ref] = (application.reference, incoming)
                first_line[record.external_ref] = line
                created += 1
            except (ValueError, DomainError) as exc:
                detail = getattr(exc, "fields", None)
                errors.append((line, f"{exc}" + (f" {detail}" if detail else "")))
            if created and created % 250 == 0:
                commit()
        commit()
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    errors.sort(key=lambda item: item[0])  # unreadable records were listed first
    return {
        "read": created + skipped + len(conflicts) + len(errors),
        "created": created,
        "skipped": skipped,
        "conflicts": conflicts,
        "errors": errors,
        "dropped": dropped,
        "notices": notices,
        "seconds": time.perf_counter() - start,
    }


def _content_for_submit(content: dict[str, Any], clean: Any = None) -> dict[str, Any]:
    """Imported rows lack fields a developer must fill; record them explicitly as not stated.
    With ``clean`` (schema.clean_content), the result is cleaned again as submitting does, so it
    equals the revision an import stores."""
    draft = dict(content)
    if not draft.get("benefits"):
        draft["benefits"] = "Not stated separately in the inventory (see the description)."
    if not draft.get("description"):
        draft["description"] = "The inventory entry has no description."
    return clean(draft, for_submit=False) if clean is not None else draft


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def import_summary(result: dict[str, Any]) -> str:
    """The one-line summary of :func:`import_inventory`'s result; its categories add up to the
    rows read, e.g. "read 3 rows: created 1, already present 1, already present with
    different content (not changed) 0, bad 1 (0.2 s)"."""
    summary = (
        f"read {_plural(result['read'], 'row')}: created {result['created']:,}, "
        f"already present {result['skipped']:,}, "
        f"already present with different content (not changed) {len(result['conflicts']):,}, "
        f"bad {len(result['errors']):,}"
    )
    if result["dropped"]:
        summary += f"; {_plural(len(result['dropped']), 'invalid label value')} left empty"
    return f"{summary} ({result['seconds']:.1f} s)"


@click.command("import-applications")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--limit", type=int, default=None, help="Import at most this many rows.")
@with_appcontext
def import_applications(path: str, limit: int | None) -> None:
    """Import the inventory's slim CSV as triaged applications (idempotent).

    Problems are listed on stderr in line order ("line N: problem"): bad records (skipped), rows
    already imported with different content (the stored application is not changed), label
    values that are not in the vocabulary (left empty). The others are imported. Exit status 1
    when any such problem was found, 2 when the file as a whole is unusable."""
    from reviewapp.extensions import db

    result = import_inventory(db.session, path, commit=db.commit, limit=limit)
    lines = sorted(
        [(line, f"note: {message}") for line, message in result["notices"]]
        + [(line, message) for line, message in result["errors"]]
        + [(line, message) for line, message in result["conflicts"]]
        + [(line, message) for line, message in result["dropped"]],
        key=lambda item: item[0],
    )
    for line, message in lines:
        click.echo(f"line {line}: {message}", err=True)
    click.echo(import_summary(result))
    if result["errors"] or result["conflicts"] or result["dropped"]:
        sys.exit(1)  # the good rows are kept (committed); the exit code says some were not


@click.command("create-user")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice(["developer", "reviewer", "senior_reviewer", "admin"]),
    default="developer",
)
@click.option("--org", "org_name", required=True, help="Organization name (created if missing).")
@click.option("--password", required=True, help="At least 10 characters.")
@click.option("--name", default="")
@click.option(
    "--api-token", is_flag=True, help="Also create an API token; printed alone on the last line."
)
@with_appcontext
def create_user_cmd(
    email: str, role: str, org_name: str, password: str, name: str, api_token: bool
) -> None:
    """Create a user (and optionally a personal API token)."""
    from reviewapp.auth.models import Role
    from reviewapp.auth.services import (
        create_user,
        get_or_create_organization,
        issue_token,
        name_problem,
    )
    from reviewapp.errors import DomainError
    from reviewapp.extensions import db
    from reviewapp.limits import LIMITS, too_long_message

    for option, value, key in (
        ("EMAIL", email, "user.email"),
        ("--org", org_name, "organization.name"),
        ("--name", name, "user.name"),
        ("--password", password, "user.password"),
    ):
        if len(value) > LIMITS[key]:
            fail(too_long_message(option, len(value), LIMITS[key]))
    for option, value, strict in (("--org", org_name, True), ("--name", name, False)):
        if (problem := name_problem(value, strict=strict)) is not None:
            fail(f"{option} {problem}.")
    try:
        org, _ = get_or_create_organization(db.session, org_name)
        user = create_user(
            db.session, email=email, password=password, role=Role(role), organization=org, name=name
        )
        token = (
            issue_token(
                db.session,
                user,
                scopes="read write review" if role != "developer" else "read write",
            )
            if api_token
            else None
        )
    except DomainError as exc:
        db.rollback()
        fail(exc.message)
    db.commit()
    click.echo(f"created {role} {user.email} in {org.name}")
    if token:
        click.echo(token)


DEMO_USERS = [
    ("developer@example.com", "developer", "Demo Developer Co", "Dana Developer"),
    ("reviewer@example.com", "reviewer", "Trust & Safety", "Riley Reviewer"),
    ("senior@example.com", "senior_reviewer", "Trust & Safety", "Sam Senior"),
    ("admin@example.com", "admin", "Trust & Safety", "Alex Admin"),
]
DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - demo accounts, local install  # nosec B105


@click.command("demo")
@click.option(
    "--data", "data_path", default=None, help="Inventory slim CSV (default: ../shared/data/…)."
)
@with_appcontext
def demo(data_path: str | None) -> None:
    """Schema, reference data, demo accounts and the real inventory, triaged. Idempotent."""
    from reviewapp.auth.models import Role
    from reviewapp.auth.services import create_user, find_user_by_email, get_or_create_organization
    from reviewapp.extensions import db

    upgrade_database(current_app.config["DATABASE_URL"])
    seed_reference_data(db.session, Path(current_app.config["SEED_DIR"]))
    db.commit()
    for email, role, org_name, name in DEMO_USERS:
        if find_user_by_email(db.session, email) is None:
            org, _ = get_or_create_organization(db.session, org_name)
            create_user(
                db.session,
                email=email,
                password=DEMO_PASSWORD,
                role=Role(role),
                organization=org,
                name=name,
            )
    db.commit()
    _demo_developer_applications(db.session)
    db.commit()
    path = (
        Path(data_path)
        if data_path
        else ROOT.parent / "shared" / "data" / "fed_ai_inventory_2024_slim.csv"
    )
    if path.exists():
        result = import_inventory(db.session, path, commit=db.commit)
        click.echo(f"inventory: {import_summary(result)}")
    else:
        click.echo(f"warning: {path} not found; no demo applications imported", err=True)
    click.echo(f"demo accounts (password for all: {DEMO_PASSWORD}):")
    for email, role, org_name, _ in DEMO_USERS:
        click.echo(f"  {role:16} {email:22} ({org_name})")


DEMO_APPLICATIONS = [
    {
        "title": "Support chat assistant for our banking app",
        "category": "assistant_chatbot",
        "description": "Answers customers' questions about their accounts, cards and fees in our "
        "mobile app. It can explain why a card payment was declined but cannot move money.",
        "benefits": "Shorter waits for routine questions; staff handle the complex cases.",
        "end_users": ["consumers"],
        "domains": ["finance"],
        "modalities": ["text"],
        "monthly_requests": 400000,
        "human_review_of_outputs": False,
        "safety_measures": "Input and output moderation; hand-off to a person on request; "
        "the bot says it is an AI.",
        "product_url": "https://example.com/bank-chat",
    },
    {
        "title": "Internal meeting summarizer",
        "category": "search_summarization",
        "description": "Summarizes recorded internal meetings into action items for the attendees.",
        "benefits": "Saves staff time after meetings.",
        "end_users": ["internal_employees"],
        "domains": ["general"],
        "modalities": ["text", "audio"],
        "monthly_requests": 3000,
        "human_review_of_outputs": True,
        "safety_measures": "Summaries go only to attendees, who review them before sharing.",
        "product_url": "",
    },
]


def _demo_developer_applications(session: Any) -> None:
    """Give the demo developer one submitted application and one draft (first run only)."""
    from reviewapp.applications.models import Application
    from reviewapp.applications.services import create_application, submit_application
    from reviewapp.auth.services import find_user_by_email

    developer = find_user_by_email(session, DEMO_USERS[0][0])
    if developer is None:
        return
    mine = select(Application).where(Application.organization_id == developer.organization_id)
    if session.scalars(mine).first() is not None:
        return
    submitted = create_application(session, developer, DEMO_APPLICATIONS[0])
    submit_application(session, developer, submitted)
    create_application(session, developer, DEMO_APPLICATIONS[1])


@click.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option(
    "--queue",
    "queue_names",
    multiple=True,
    type=click.Choice(["high", "default", "low"]),
    help="Work only these queues, in this order (repeat the option); default: high, default, "
    "low. E.g. a worker for backtests only: --queue low.",
)
@with_appcontext
def worker(burst: bool, queue_names: tuple[str, ...]) -> None:
    """Run an RQ worker on the high, default and low queues (needs REVIEWAPP_REDIS_URL)."""
    from rq import Worker

    from reviewapp.jobs import QUEUES, redis_connection, rq_queue

    conn = redis_connection()
    if conn is None:
        fail(
            "REVIEWAPP_REDIS_URL is not set; without Redis, jobs run inline and no worker is needed"
        )
    queues = [rq_queue(name) for name in (queue_names or QUEUES)]
    Worker(queues, connection=conn).work(burst=burst, with_scheduler=False)


@click.command("sweep")
@with_appcontext
def sweep() -> None:
    """Housekeeping to run every minute or so (cron, or an RQ scheduler): end expired leases,
    report newly missed SLAs to the review leads, deliver notifications left pending, recover
    interrupted webhook deliveries and send the due retries, fail backtests whose worker died
    (silent for BACKTEST_STALL_SECONDS) and resume a re-triage that a dead worker left unfinished.

    Work a killed worker can leave behind, and who recovers it:
      claims (in_review)           lease expiry (LEASE_SECONDS) returns them to the queue
      outbox rows (pending)        the delivery transaction rolled back; re-dispatched here
      webhook deliveries (sending) requeued after WEBHOOK_SENDING_LEASE_SECONDS
      backtests (queued/running)   failed with a message after BACKTEST_STALL_SECONDS
      re-triage after a publish    re-enqueued here; it resumes where it stopped
    """
    from reviewapp.logs import job_request_id

    # one id for the whole run: its log lines, audit events (lease expiry, failed backtests)
    # and the jobs it enqueues carry it, as a request's do
    with job_request_id(f"sweep-{uuid.uuid4().hex[:16]}"):
        _sweep()


def _sweep() -> None:
    from reviewapp.extensions import db
    from reviewapp.notifications.jobs import dispatch_pending
    from reviewapp.review.services import expire_leases, notify_sla_breaches

    ended = expire_leases(db.session)
    db.commit()
    breached = notify_sla_breaches(db.session)
    db.commit()
    from reviewapp.webhooks.jobs import dispatch_due_deliveries
    from reviewapp.webhooks.services import recover_stuck_deliveries

    requeued, failed = recover_stuck_deliveries(db.session)
    db.commit()
    from reviewapp.triage.backtest import fail_stalled_backtests
    from reviewapp.triage.retriage import resume_interrupted_retriage

    stalled = fail_stalled_backtests(
        db.session, float(current_app.config["BACKTEST_STALL_SECONDS"])
    )
    db.commit()
    resumed = resume_interrupted_retriage(db.session)
    db.commit()  # enqueues the re-triage job (or runs it inline without Redis)
    click.echo(
        f"{ended} expired leases returned to their queues; {breached} newly overdue "
        f"applications reported to the review leads; {dispatch_pending()} pending notifications handled; "
        f"webhooks: {requeued} interrupted deliveries requeued, {failed} failed, "
        f"{dispatch_due_deliveries()} due deliveries handled; "
        f"backtests: {len(stalled)} stalled marked failed; "
        + (
            f"re-triage under ruleset v{resumed} resumed"
            if resumed is not None
            else "re-triage: nothing left over"
        )
    )


@click.command("dispatch-outbox")
@with_appcontext
def dispatch_outbox() -> None:
    """Deliver (or enqueue) every pending outbox notification."""
    from reviewapp.notifications.jobs import dispatch_pending

    click.echo(f"{dispatch_pending()} pending notifications handled")


@click.group("audit")
def audit_cli() -> None:
    """The audit log."""


@audit_cli.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Recompute the audit hash chain; name the first broken event (exit 1) or say it is intact."""
    from reviewapp.audit.chain import verify_chain
    from reviewapp.extensions import db

    report = verify_chain(db.session)
    if report.broken_event_id is not None:
        click.echo(f"BROKEN after {report.checked} intact events: {report.problem}", err=True)
        raise SystemExit(1)
    click.echo(f"audit chain intact: {report.checked} events verified")
