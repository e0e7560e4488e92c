"""backtest heartbeat (flask sweep fails backtests whose worker died)

Revision ID: b9d4f2a6c8e1
Revises: a7c3e9f1b5d2
Create Date: 2026-11-30 10:20:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'b9d4f2a6c8e1'
down_revision: str | None = 'a7c3e9f1b5d2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('backtest', sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('backtest', 'heartbeat_at')
