"""transfer status: the last outcome's message, and the type of the partner's record

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 06:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('opportunity_transfers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('remote_type', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('opportunity_transfers', schema=None) as batch_op:
        batch_op.drop_column('remote_type')
        batch_op.drop_column('message')
