"""a plan's items no longer copy the facts their new decision is made of: the apply reads them from the
lead's decision at the planned version

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reassignment_items') as batch:
        batch.drop_column('facts')


def downgrade() -> None:
    with op.batch_alter_table('reassignment_items') as batch:
        batch.add_column(sa.Column('facts', sa.JSON(), nullable=True))
