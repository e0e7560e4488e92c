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


def upgrade() -> None:
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sla_target_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sla_consumed_seconds', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('sla_running_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('preferred_reviewer_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_application_preferred_reviewer_id_user_account'), 'user_account', ['preferred_reviewer_id'], ['id'], ondelete='SET NULL')
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.alter_column('sla_consumed_seconds', server_default=None)
    # running clocks of applications already in a queue: from when they entered it
    op.execute("UPDATE application SET sla_running_since = queued_at "
               "WHERE status IN ('queued', 'in_review', 'awaiting_second_approval', 'appealed')")

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=False, server_default=''))
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.alter_column('timezone', server_default=None)

    with op.batch_alter_table('safety_requirement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parameters', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('safety_requirement', schema=None) as batch_op:
        batch_op.alter_column('parameters', server_default=None)

    with op.batch_alter_table('risk_tier', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_approve', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('qa_sample_rate', sa.Float(), nullable=False, server_default='0'))
    with op.batch_alter_table('risk_tier', schema=None) as batch_op:
        batch_op.alter_column('auto_approve', server_default=None)
        batch_op.alter_column('qa_sample_rate', server_default=None)

    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.alter_column('reviewer_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM decision WHERE reviewer_id IS NULL")
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.alter_column('reviewer_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('risk_tier', schema=None) as batch_op:
        batch_op.drop_column('qa_sample_rate')
        batch_op.drop_column('auto_approve')
    with op.batch_alter_table('safety_requirement', schema=None) as batch_op:
        batch_op.drop_column('parameters')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('timezone')
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_application_preferred_reviewer_id_user_account'), type_='foreignkey')
        batch_op.drop_column('preferred_reviewer_id')
        batch_op.drop_column('sla_running_since')
        batch_op.drop_column('sla_consumed_seconds')
        batch_op.drop_column('sla_target_seconds')
