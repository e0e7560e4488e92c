"""precedents: full-text search over revisions

PostgreSQL: a GIN expression index on the English tsvector of a revision's free text (title,
description, benefits, safety measures); reviewapp.review.precedents queries that same expression.
Building it parses every revision once (~0.2 ms each) and blocks writes to revision meanwhile.

SQLite: an FTS5 table ``revision_fts`` (rowid = revision.id), backfilled here and kept in step by
triggers on ``revision``. A later batch (table-recreating) migration of ``revision`` on SQLite
drops these triggers with the old table: it must create them again.

Revision ID: 7f3c1e2d9a10
Revises: 26bc81fcf84a
Create Date: 2026-11-30 06:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '7f3c1e2d9a10'
down_revision: str | None = '26bc81fcf84a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written the way PostgreSQL prints it back (as reflected, minus the casts), so that the
# model's Index compares equal in autogenerate; the model holds the same text.
PG_VECTOR = (
    "to_tsvector('english', (((((COALESCE(content ->> 'title', '') || ' ') "
    "|| COALESCE(content ->> 'description', '')) || ' ') "
    "|| COALESCE(content ->> 'benefits', '')) || ' ') "
    "|| COALESCE(content ->> 'safety_measures', ''))"
)


def _sqlite_columns(row: str) -> str:
    return (
        f"coalesce(json_extract({row}.content, '$.title'), ''), "
        f"coalesce(json_extract({row}.content, '$.description'), '') || ' ' || "
        f"coalesce(json_extract({row}.content, '$.benefits'), '') || ' ' || "
        f"coalesce(json_extract({row}.content, '$.safety_measures'), '')"
    )


SQLITE_UPGRADE = [
    "CREATE VIRTUAL TABLE revision_fts USING fts5("
    "title, body, tokenize = 'porter unicode61 remove_diacritics 2')",
    f"INSERT INTO revision_fts (rowid, title, body) SELECT revision.id, {_sqlite_columns('revision')} "
    "FROM revision",
    "CREATE TRIGGER revision_fts_insert AFTER INSERT ON revision BEGIN "
    f"INSERT INTO revision_fts (rowid, title, body) VALUES (new.id, {_sqlite_columns('new')}); END",
    "CREATE TRIGGER revision_fts_delete AFTER DELETE ON revision BEGIN "
    "DELETE FROM revision_fts WHERE rowid = old.id; END",
    # revisions are immutable; this only keeps the index honest if one is ever corrected by hand
    "CREATE TRIGGER revision_fts_update AFTER UPDATE OF id, content ON revision BEGIN "
    "DELETE FROM revision_fts WHERE rowid = old.id; "
    f"INSERT INTO revision_fts (rowid, title, body) VALUES (new.id, {_sqlite_columns('new')}); END",
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS revision_fts_update",
    "DROP TRIGGER IF EXISTS revision_fts_delete",
    "DROP TRIGGER IF EXISTS revision_fts_insert",
    "DROP TABLE IF EXISTS revision_fts",
]


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == 'postgresql':
        op.create_index(
            'ix_revision_search', 'revision', [sa.text(PG_VECTOR)], postgresql_using='gin'
        )
        # the search reads how common each lexeme is from these statistics (until the first
        # ANALYZE it has none); on an existing table, autovacuum may not analyze it for long
        op.execute('ANALYZE revision')
    elif dialect == 'sqlite':
        for statement in SQLITE_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == 'postgresql':
        op.drop_index('ix_revision_search', table_name='revision')
    elif dialect == 'sqlite':
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
