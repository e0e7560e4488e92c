"""two-person approval: final flag, queue indexes include awaiting_second_approval

Revision ID: cead601f9682
Revises: 12279897d132
Create Date: 2026-11-30 05:04:10.515710+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'cead601f9682'
down_revision: str | None = '12279897d132'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD = "status IN ('queued', 'in_review')"
NEW = "status IN ('queued', 'in_review', 'awaiting_second_approval')"


def _queue_indexes(predicate: str) -> None:
    op.drop_index('ix_application_open_order', table_name='application')
    op.drop_index('ix_application_open_filter', table_name='application')
    op.create_index('ix_application_open_filter', 'application', ['queue', 'risk_tier', 'organization_id'], unique=False,
                    postgresql_where=sa.text(predicate), sqlite_where=sa.text(predicate))
    op.create_index('ix_application_open_order', 'application', ['sla_due_at', sa.literal_column('tier_rank DESC'), 'queued_at', 'id'],
                    unique=False, postgresql_where=sa.text(predicate), sqlite_where=sa.text(predicate))


def upgrade() -> None:
    # existing decisions were all final; the default fills them, then goes away
    with op.batch_alter_table('decision') as batch_op:
        batch_op.add_column(sa.Column('final', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('decision') as batch_op:
        batch_op.alter_column('final', server_default=None)
    _queue_indexes(NEW)


def downgrade() -> None:
    _queue_indexes(OLD)
    with op.batch_alter_table('decision') as batch_op:
        batch_op.drop_column('final')
