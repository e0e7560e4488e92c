"""queue position and preferred reviewer indexes

Revision ID: b8e2f4a6c913
Revises: b9d4f2a6c8e1
Create Date: 2026-11-30 10:30:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'b8e2f4a6c913'
down_revision: str | None = 'b9d4f2a6c8e1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('queued', 'in_review', 'awaiting_second_approval', 'appealed')"


def upgrade() -> None:
    op.create_index('ix_application_queue_position', 'application', ['queue', 'sla_due_at', 'id'], unique=False,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_index('ix_application_preferred_reviewer', 'application', ['preferred_reviewer_id'], unique=False,
                    postgresql_where=sa.text('preferred_reviewer_id IS NOT NULL'),
                    sqlite_where=sa.text('preferred_reviewer_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_application_preferred_reviewer', table_name='application',
                  postgresql_where=sa.text('preferred_reviewer_id IS NOT NULL'),
                  sqlite_where=sa.text('preferred_reviewer_id IS NOT NULL'))
    op.drop_index('ix_application_queue_position', table_name='application',
                  postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
