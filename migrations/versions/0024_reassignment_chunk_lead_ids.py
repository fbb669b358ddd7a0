"""a chunk of an incremental plan names its leads (the few candidates of a wide id range), so its task
reads them by id instead of selecting them from the range again

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 03:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reassignment_chunks") as batch:
        batch.add_column(sa.Column("lead_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reassignment_chunks") as batch:
        batch.drop_column("lead_ids")
