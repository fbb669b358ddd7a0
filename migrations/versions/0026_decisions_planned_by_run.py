"""a decision names the reassignment run whose plan made it; the index an incremental plan reads for leads
decided with another model leaves those out (a plan's decisions are many, and not in force until
applied: the incremental plan finds the leads a run moved by the run's items)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

OUTSIDE_RUNS = "subject_type = 'lead' AND planned_by_run_id IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("planned_by_run_id", sa.Integer(), nullable=True))
        batch.drop_index("ix_decisions_territory_model_id")
    op.create_index(
        "ix_decisions_lead_model_outside_runs",
        "decisions",
        ["territory_model_id"],
        postgresql_where=sa.text(OUTSIDE_RUNS),
        sqlite_where=sa.text(OUTSIDE_RUNS),
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_lead_model_outside_runs", table_name="decisions")
    with op.batch_alter_table("decisions") as batch:
        batch.create_index("ix_decisions_territory_model_id", ["territory_model_id"])
        batch.drop_column("planned_by_run_id")
