"""outbox messages: an ordering key (messages sharing it are delivered one at a time, oldest first)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ordering_key', sa.String(length=255), nullable=True))
        batch_op.create_index('ix_outbox_messages_ordering', ['channel', 'ordering_key', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_ordering')
        batch_op.drop_column('ordering_key')
