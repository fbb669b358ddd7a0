"""the reference tables (customers, products, partner programs, organizations) indexed by their last
change: the reference fingerprint every decision and what-if reads is then two index lookups per table
instead of a scan

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 13:20:00
"""

from __future__ import annotations

from alembic import op


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

TABLES = ('customers', 'products', 'partner_programs', 'organizations')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_updated_at', ['updated_at'], unique=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_updated_at')
