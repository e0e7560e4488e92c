"""audit hash chain: prev_hash and hash on every audit event (existing events are chained)

Revision ID: f6b8d2e4a1c7
Revises: c5e1a9d3b2f4
Create Date: 2026-11-30 08:15:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'f6b8d2e4a1c7'
down_revision: str | None = 'c5e1a9d3b2f4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('audit_event', sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column('audit_event', sa.Column('hash', sa.String(length=64), nullable=True))
    # chain the events written before this migration, in id order (a table description of
    # this revision, not the model, so later model changes cannot break this migration)
    import datetime as dt
    from types import SimpleNamespace

    from reviewapp.audit.chain import GENESIS, event_hash

    events = sa.table(
        'audit_event',
        sa.column('id', sa.Integer()), sa.column('actor_id', sa.Integer()),
        sa.column('action', sa.String()), sa.column('subject_type', sa.String()),
        sa.column('subject_id', sa.String()), sa.column('before', sa.JSON()),
        sa.column('after', sa.JSON()), sa.column('request_id', sa.String()),
        sa.column('created_at', sa.DateTime(timezone=True)),
        sa.column('prev_hash', sa.String()), sa.column('hash', sa.String()),
    )
    bind = op.get_bind()
    prev, last_id = GENESIS, 0
    while True:
        rows = bind.execute(
            sa.select(events).where(events.c.id > last_id).order_by(events.c.id).limit(2000)
        ).mappings().all()
        if not rows:
            break
        for row in rows:
            created = row['created_at']
            if created is not None:  # stored UTC; SQLite returns it without a zone
                created = created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created.astimezone(dt.UTC)
            digest = event_hash(SimpleNamespace(**{**row, 'created_at': created}), prev)  # type: ignore[arg-type]
            bind.execute(
                sa.update(events).where(events.c.id == row['id']).values(prev_hash=prev, hash=digest)
            )
            prev, last_id = digest, row['id']


def downgrade() -> None:
    op.drop_column('audit_event', 'hash')
    op.drop_column('audit_event', 'prev_hash')
