"""one history row per lead and reassignment run (a unique index behind the idempotent chunks)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:00:00.000000
"""

from __future__ import annotations

from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

NAME = "uq_audit_events_reassigned_run"


def upgrade() -> None:
    # A chunk delivered twice, or resumed after a kill, may never write a lead's "reassigned" row of
    # one run twice: the chunk's row lock orders the deliveries, and this index refuses a second row.
    if op.get_bind().dialect.name == "postgresql":
        run = "(details ->> 'reassignment_run_id')"
    else:
        run = "json_extract(details, '$.reassignment_run_id')"
    op.execute(
        f"CREATE UNIQUE INDEX {NAME} ON audit_events (entity_type, entity_id, ({run})) "
        "WHERE action = 'reassigned'"
    )


def downgrade() -> None:
    op.execute(f"DROP INDEX {NAME}")
