"""ruleset versions keep their first publish time; a rollback is recorded as a re-activation

A rollback overwrote published_at/published_by_id with the rollback's time and admin, losing
when the version was first published. Two columns now hold the latest rollback. Existing rows
that were rolled back to are repaired from the audit log (append-only): reactivated_* from the
latest ruleset.rollback event, published_* from the ruleset.publish event, or, for a version
published at creation (seed, CLI import) which has no such event, its creation time and author.

Revision ID: c5f1a9d3e7b2
Revises: e7b1c5d9a2f4
Create Date: 2026-11-30 17:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c5f1a9d3e7b2'
down_revision: str | None = 'e7b1c5d9a2f4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LATEST_ROLLBACK = """
    SELECT e.created_at, e.actor_id FROM audit_event e
    WHERE e.action = 'ruleset.rollback' AND e.subject_type = 'ruleset_version'
      AND e.subject_id = CAST(ruleset_version.number AS VARCHAR(64))
    ORDER BY e.id DESC LIMIT 1
"""
FIRST_PUBLISH = """
    SELECT e.created_at, e.actor_id FROM audit_event e
    WHERE e.action = 'ruleset.publish' AND e.subject_type = 'ruleset_version'
      AND e.subject_id = CAST(ruleset_version.number AS VARCHAR(64))
    ORDER BY e.id LIMIT 1
"""


def _pick(query: str, column: str) -> str:
    return f"(SELECT {column} FROM ({query}) AS picked)"


def upgrade() -> None:
    with op.batch_alter_table('ruleset_version') as batch_op:
        batch_op.add_column(sa.Column('reactivated_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reactivated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(op.f('fk_ruleset_version_reactivated_by_id_user_account'), 'user_account', ['reactivated_by_id'], ['id'], ondelete='SET NULL')
    rolled_back = f"EXISTS ({LATEST_ROLLBACK})"
    published = f"EXISTS ({FIRST_PUBLISH})"
    op.execute(
        f"""
        UPDATE ruleset_version SET
            reactivated_at = {_pick(LATEST_ROLLBACK, 'created_at')},
            reactivated_by_id = {_pick(LATEST_ROLLBACK, 'actor_id')},
            published_at = CASE WHEN {published} THEN {_pick(FIRST_PUBLISH, 'created_at')}
                                ELSE created_at END,
            published_by_id = CASE WHEN {published} THEN {_pick(FIRST_PUBLISH, 'actor_id')}
                                   ELSE created_by_id END
        WHERE {rolled_back}
        """
    )


def downgrade() -> None:
    # the version's latest activation goes back into published_* (what the old code kept)
    op.execute(
        """
        UPDATE ruleset_version SET published_at = reactivated_at,
                                   published_by_id = reactivated_by_id
        WHERE reactivated_at IS NOT NULL
        """
    )
    with op.batch_alter_table('ruleset_version') as batch_op:
        batch_op.drop_constraint(op.f('fk_ruleset_version_reactivated_by_id_user_account'), type_='foreignkey')
        batch_op.drop_column('reactivated_at')
        batch_op.drop_column('reactivated_by_id')
