"""Alembic environment: the database URL comes from the app's configuration.

On PostgreSQL, migrations run with a lock timeout and a statement timeout so a migration never
waits forever behind a long transaction (as Warehouse's migrations do).
"""

from __future__ import annotations

import warnings
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, text

from reviewapp.models import Base

# SQLite batch migrations reflect tables; the functional lower(email) index cannot be reflected
# there, which is harmless (batch operations never touch user_account).
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    from reviewapp import create_app

    return str(create_app().config["DATABASE_URL"])


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Leave SQLite's FTS5 precedent-search table and its shadow tables out of autogenerate:
    the migration creates them and no model declares them (reviewapp/review/precedents.py)."""
    from reviewapp.review.precedents import is_search_table

    return not (type_ == "table" and is_search_table(name))


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        include_name=include_name,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_database_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def render_item(type_: str, obj, autogen_context):  # type: ignore[no-untyped-def]
    """Render the app's UTCDateTime as a plain timezone-aware DateTime in migrations."""
    from reviewapp.db import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET lock_timeout = '10s'"))
        connection.execute(text("SET statement_timeout = '600s'"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
