"""on PostgreSQL registration numbers come from a sequence, not the counter row: the row stayed locked by
each submitting transaction until it committed, so every submit waited for the one before it (at 150
submits/s most of the service's database sessions were waiting on that row); a sequence hands out
numbers without a lock. The sequence continues after the counter's last value; SQLite (one writer at a
time anyway) keeps the counter row.

The sequence is owned by the counter's column, so it goes with that table (and ``TRUNCATE ... RESTART
IDENTITY`` restarts it).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-04 21:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

SEQUENCE = "registration_numbers"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE SEQUENCE {SEQUENCE} OWNED BY registration_counters.last_value")
    op.execute(
        f"SELECT setval('{SEQUENCE}', last_value) FROM registration_counters "
        "WHERE name = 'registration' AND last_value > 0"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # the counter row continues from the last number the sequence handed out
    op.execute(
        "INSERT INTO registration_counters (name, last_value) "
        f"SELECT 'registration', last_value FROM {SEQUENCE} WHERE is_called "
        "ON CONFLICT (name) DO UPDATE SET last_value = excluded.last_value"
    )
    op.execute(f"DROP SEQUENCE {SEQUENCE}")
