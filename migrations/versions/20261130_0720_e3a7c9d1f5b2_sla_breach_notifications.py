"""SLA breach notifications: when the leads were told

Revision ID: e3a7c9d1f5b2
Revises: d8f2b6a4c391
Create Date: 2026-11-30 07:20:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e3a7c9d1f5b2'
down_revision: str | None = 'd8f2b6a4c391'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('application', sa.Column('sla_breach_notified_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('application', 'sla_breach_notified_at')
