"""mitigation answers, requirement parameters, business-hours SLA clock, preferred reviewer,
auto-approval with a QA sample, user time zone

Revision ID: b4d2e8c1f077
Revises: 7f3c1e2d9a10
Create Date: 2026-11-30 06:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'b4d2e8c1f077'
down_revision: str | None = '7f3c1e2d9a10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD COLUMN (no batch table rebuild): on SQLite a rebuild would drop the functional
# unique index on lower(email) and the partial queue indexes. Server defaults stay in place
# (they only fill rows that existed before this migration).


def upgrade() -> None:
    op.add_column('application', sa.Column('sla_target_seconds', sa.Integer(), nullable=True))
    op.add_column('application', sa.Column('sla_consumed_seconds', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('application', sa.Column('sla_running_since', sa.DateTime(timezone=True), nullable=True))
    op.add_column('application', sa.Column('preferred_reviewer_id', sa.Integer(), nullable=True))
    if op.get_bind().dialect.name != 'sqlite':
        # SQLite cannot add a constraint to an existing table without a rebuild (see above);
        # users are deactivated, never deleted, so the missing ON DELETE SET NULL is harmless
        op.create_foreign_key(op.f('fk_application_preferred_reviewer_id_user_account'),
                              'application', 'user_account', ['preferred_reviewer_id'], ['id'],
                              ondelete='SET NULL')
    # running clocks of applications already in a queue: from when they entered it
    op.execute("UPDATE application SET sla_running_since = queued_at "
               "WHERE status IN ('queued', 'in_review', 'awaiting_second_approval', 'appealed')")
    op.add_column('user_account', sa.Column('timezone', sa.String(length=64), nullable=False, server_default=''))
    op.add_column('safety_requirement', sa.Column('parameters', sa.JSON(), nullable=False, server_default='[]'))
    op.add_column('risk_tier', sa.Column('auto_approve', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('risk_tier', sa.Column('qa_sample_rate', sa.Float(), nullable=False, server_default='0'))
    # decision has only plain indexes, so a batch rebuild on SQLite keeps them
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.alter_column('reviewer_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # automatic decisions have no reviewer and cannot be kept under the old NOT NULL rule;
    # dropping them would leave approved applications without their decision, so refuse
    automatic = op.get_bind().execute(
        sa.text("SELECT count(*) FROM decision WHERE reviewer_id IS NULL")).scalar()
    if automatic:
        raise RuntimeError(
            f"{automatic} automatic (fast-track) decisions exist; the schema before this "
            "migration cannot store them. Downgrading would lose them: refused.")
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.alter_column('reviewer_id', existing_type=sa.Integer(), nullable=False)
    op.drop_column('risk_tier', 'qa_sample_rate')
    op.drop_column('risk_tier', 'auto_approve')
    op.drop_column('safety_requirement', 'parameters')
    op.drop_column('user_account', 'timezone')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint(op.f('fk_application_preferred_reviewer_id_user_account'), 'application', type_='foreignkey')
    op.drop_column('application', 'preferred_reviewer_id')
    op.drop_column('application', 'sla_running_since')
    op.drop_column('application', 'sla_consumed_seconds')
    op.drop_column('application', 'sla_target_seconds')
