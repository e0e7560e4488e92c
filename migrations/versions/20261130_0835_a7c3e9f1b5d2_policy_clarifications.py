"""policy clarifications

Revision ID: a7c3e9f1b5d2
Revises: f6b8d2e4a1c7
Create Date: 2026-11-30 08:35:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'a7c3e9f1b5d2'
down_revision: str | None = 'f6b8d2e4a1c7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clarification_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('policy_section_id', sa.Integer(), nullable=False),
    sa.Column('policy_section_version_id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('requester_id', sa.Integer(), nullable=False),
    sa.Column('application_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('answered_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('clarification', 'change')", name=op.f('ck_clarification_request_kind_known')),
    sa.CheckConstraint("status IN ('open', 'answered', 'declined')", name=op.f('ck_clarification_request_status_known')),
    sa.CheckConstraint('length(message) BETWEEN 20 AND 5000', name=op.f('ck_clarification_request_message_length')),
    sa.CheckConstraint("(status = 'open' AND answer IS NULL AND answered_by_id IS NULL AND answered_at IS NULL) OR (status <> 'open' AND answer IS NOT NULL AND answered_by_id IS NOT NULL AND answered_at IS NOT NULL)", name=op.f('ck_clarification_request_answer_matches_status')),
    sa.ForeignKeyConstraint(['application_id'], ['application.id'], name=op.f('fk_clarification_request_application_id_application'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['answered_by_id'], ['user_account.id'], name=op.f('fk_clarification_request_answered_by_id_user_account'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_clarification_request_organization_id_organization'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['policy_section_id'], ['policy_section.id'], name=op.f('fk_clarification_request_policy_section_id_policy_section'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['policy_section_version_id'], ['policy_section_version.id'], name=op.f('fk_clarification_request_policy_section_version_id_policy_section_version'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['requester_id'], ['user_account.id'], name=op.f('fk_clarification_request_requester_id_user_account'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clarification_request'))
    )
    op.create_index(op.f('ix_clarification_request_organization_id'), 'clarification_request', ['organization_id'], unique=False)
    op.create_index(op.f('ix_clarification_request_policy_section_id'), 'clarification_request', ['policy_section_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_clarification_request_policy_section_id'), table_name='clarification_request')
    op.drop_index(op.f('ix_clarification_request_organization_id'), table_name='clarification_request')
    op.drop_table('clarification_request')
