"""an incremental reassignment run stores the members its leads fall under (worked out once, when the
run is created, rather than by every chunk from both models); decisions indexed by territory model (the
leads decided with another model than the active one are the rest of an incremental plan)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reassignment_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incremental_members', sa.JSON(), nullable=True))
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_territory_model_id', ['territory_model_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_territory_model_id')
    with op.batch_alter_table('reassignment_runs', schema=None) as batch_op:
        batch_op.drop_column('incremental_members')
