"""opportunities: a sales stage, a contact's role; connections that send updates automatically

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sa.String(length=100), nullable=True))
    with op.batch_alter_table('opportunity_contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=100), nullable=True))
    with op.batch_alter_table('partner_crm_connections', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('send_updates_automatically', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table('partner_crm_connections', schema=None) as batch_op:
        batch_op.drop_column('send_updates_automatically')
    with op.batch_alter_table('opportunity_contacts', schema=None) as batch_op:
        batch_op.drop_column('role')
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.drop_column('stage')
