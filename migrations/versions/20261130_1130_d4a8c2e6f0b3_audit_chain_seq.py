"""audit chain_seq: events are chained at commit, in commit order (existing events keep theirs)

Revision ID: d4a8c2e6f0b3
Revises: b8e2f4a6c913
Create Date: 2026-11-30 11:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'd4a8c2e6f0b3'
down_revision: str | None = 'b8e2f4a6c913'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('audit_event', sa.Column('chain_seq', sa.BigInteger(), nullable=True))
    # events written before this revision were chained in id order: their place is their rank
    op.execute(
        "UPDATE audit_event SET chain_seq = ranked.seq FROM ("
        " SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS seq FROM audit_event"
        " WHERE hash IS NOT NULL) AS ranked WHERE audit_event.id = ranked.id"
    )
    op.create_index('ix_audit_event_chain_seq', 'audit_event', ['chain_seq'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_audit_event_chain_seq', table_name='audit_event')
    op.drop_column('audit_event', 'chain_seq')
