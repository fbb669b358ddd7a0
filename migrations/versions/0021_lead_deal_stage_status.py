"""a lead kept from a transfer holds the deal's stage and open/won/lost (``stage``, ``deal_status``), which
the opportunity it converts into takes over

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('deal_status', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('deal_status')
        batch_op.drop_column('stage')
