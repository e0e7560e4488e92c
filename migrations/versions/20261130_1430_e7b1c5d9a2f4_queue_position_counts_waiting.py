"""queue position counts only applications waiting for a reviewer

The API's queue_position now counts the queued (unclaimed) applications ahead in the queue's
own order (SLA due, tier, age, id); the partial index it reads moves from the open statuses to
status = 'queued' and holds every column of that order, so the count stays an index-only scan
(with the open-status predicate it needed a heap fetch per row).

Revision ID: e7b1c5d9a2f4
Revises: d4a8c2e6f0b3
Create Date: 2026-11-30 14:30:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e7b1c5d9a2f4'
down_revision: str | None = 'd4a8c2e6f0b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('queued', 'in_review', 'awaiting_second_approval', 'appealed')"
WAITING = "status = 'queued'"
OLD_COLUMNS = ['queue', 'sla_due_at', 'id']
NEW_COLUMNS = ['queue', 'sla_due_at', 'tier_rank', 'queued_at', 'id']


def _replace(old: str, new: str, columns: list[str]) -> None:
    op.drop_index('ix_application_queue_position', table_name='application',
                  postgresql_where=sa.text(old), sqlite_where=sa.text(old))
    op.create_index('ix_application_queue_position', 'application', columns, unique=False,
                    postgresql_where=sa.text(new), sqlite_where=sa.text(new))


def upgrade() -> None:
    _replace(OPEN, WAITING, NEW_COLUMNS)


def downgrade() -> None:
    _replace(WAITING, OPEN, OLD_COLUMNS)
