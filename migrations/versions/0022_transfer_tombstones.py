"""a deleted child record's correlation key stays as a tombstone (``deleted_at``); the child records transfer
pairs never give a deleted record's id again (AUTOINCREMENT on SQLite; PostgreSQL sequences never do)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 16:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

CHILD_TABLES = (
    'opportunity_contacts',
    'opportunity_notes',
    'opportunity_activities',
    'opportunity_revenue_lines',
    'lead_contacts',
    'lead_notes',
    'lead_activities',
    'lead_products',
)


def _autoincrement(on: bool) -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in CHILD_TABLES:  # rebuilt (the migration environment turns foreign keys off on SQLite)
        with op.batch_alter_table(
            table, recreate='always', table_kwargs={'sqlite_autoincrement': on}
        ):
            pass


def upgrade() -> None:
    with op.batch_alter_table('transfer_correlation_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    _autoincrement(True)


def downgrade() -> None:
    _autoincrement(False)
    with op.batch_alter_table('transfer_correlation_keys', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
