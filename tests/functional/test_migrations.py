"""Migrations: empty database -> head, no drift against the models, downgrade and upgrade again."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from reviewapp.cli import alembic_config
from reviewapp.db import recreate_postgres_database
from reviewapp.models import Base
from tests.conftest import IN_CI, PG_URL, _postgres_available


@pytest.fixture()
def empty_database_url(tmp_path) -> str:  # noqa: ANN001
    if _postgres_available():
        url = str(
            make_url(PG_URL)
            .set(database="reviewapp_test_migrations")
            .render_as_string(hide_password=False)
        )
        recreate_postgres_database(url)
        return url
    if IN_CI:
        pytest.fail("PostgreSQL is not reachable (CI=true)")
    return f"sqlite:///{tmp_path / 'm.sqlite3'}"


def _drift(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    return diff


def _current_revision(url: str) -> str | None:
    engine = create_engine(url)
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return revision


def test_upgrade_from_empty_has_no_drift_and_round_trips(empty_database_url: str) -> None:
    cfg = alembic_config(empty_database_url)
    cfg.attributes["skip_logging"] = True
    command.upgrade(cfg, "head")
    assert _drift(empty_database_url) == []
    engine = create_engine(empty_database_url)
    tables = set(inspect(engine).get_table_names())
    assert {
        "application",
        "revision",
        "decision",
        "audit_event",
        "outbox_event",
        "ruleset_version",
    } <= tables
    engine.dispose()
    # one step down (the newest migration's downgrade) and up again
    head = ScriptDirectory.from_config(cfg).get_current_head()
    command.downgrade(cfg, "-1")
    assert _current_revision(empty_database_url) not in (None, head)
    command.upgrade(cfg, "head")
    assert _current_revision(empty_database_url) == head
    assert _drift(empty_database_url) == []
    # and all the way down to an empty database, then up from empty to head
    command.downgrade(cfg, "base")
    engine = create_engine(empty_database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    command.upgrade(cfg, "head")
    assert _current_revision(empty_database_url) == head
    assert _drift(empty_database_url) == []


def test_database_enforces_claim_and_decision_invariants(db, is_postgres) -> None:
    from sqlalchemy.exc import IntegrityError

    from tests.factories import ApplicationFactory

    application = ApplicationFactory(submitted=True)
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            text("UPDATE application SET claimed_by_id = submitter_id WHERE id = :id"),
            {"id": application.id},
        )
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            text("UPDATE application SET status = 'approved' WHERE id = :id"),
            {"id": application.id},
        )
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            text("UPDATE application SET status = 'bogus' WHERE id = :id"), {"id": application.id}
        )
