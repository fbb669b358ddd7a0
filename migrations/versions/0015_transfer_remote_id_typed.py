"""transfer: a remote id is unique per record type (the partner's lead 7 and its opportunity 7 are two)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 08:10:00.000000
"""

from __future__ import annotations

from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a remote id stored before its type was kept named an opportunity of the partner's
    op.execute(
        "UPDATE opportunity_transfers SET remote_type = 'opportunity' "
        "WHERE remote_id IS NOT NULL AND remote_type IS NULL"
    )
    with op.batch_alter_table('opportunity_transfers', schema=None) as batch_op:
        batch_op.drop_constraint('uq_opportunity_transfers_remote', type_='unique')
        batch_op.create_unique_constraint(
            'uq_opportunity_transfers_remote', ['connection_id', 'remote_type', 'remote_id']
        )


def downgrade() -> None:
    with op.batch_alter_table('opportunity_transfers', schema=None) as batch_op:
        batch_op.drop_constraint('uq_opportunity_transfers_remote', type_='unique')
        batch_op.create_unique_constraint('uq_opportunity_transfers_remote', ['connection_id', 'remote_id'])
