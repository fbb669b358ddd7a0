"""a plan stores the decisions it makes (its items name them) and the apply no longer rewrites the items
it applies: an applied item is a move of a finished apply chunk that was not skipped; an apply chunk
counts its items

Items planned before this revision and not applied yet get their decision stored here; items marked
applied lose the mark (it is read from their chunk now).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 15:30:00
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

_meta = sa.MetaData()
items = sa.Table(
    "reassignment_items",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer),
    sa.Column("lead_id", sa.Integer),
    sa.Column("outcome", sa.String),
    sa.Column("reason", sa.Text),
    sa.Column("after", sa.JSON),
    sa.Column("result_json", sa.JSON),
    sa.Column("decision_id", sa.Integer),
    sa.Column("result", sa.String),
    sa.Column("result_reason", sa.Text),
    sa.Column("applied_at", sa.DateTime(timezone=True)),
)
chunks = sa.Table(
    "reassignment_chunks",
    _meta,
    sa.Column("run_id", sa.Integer),
    sa.Column("phase", sa.String),
    sa.Column("first_id", sa.Integer),
    sa.Column("last_id", sa.Integer),
    sa.Column("done_at", sa.DateTime(timezone=True)),
)
leads = sa.Table(
    "leads",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("organization_id", sa.Integer),
    sa.Column("decision_id", sa.Integer),
)
decisions = sa.Table(
    "decisions",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("subject_type", sa.String),
    sa.Column("subject_id", sa.Integer),
    sa.Column("organization_id", sa.Integer),
    sa.Column("territory_model_id", sa.Integer),
    sa.Column("facts", sa.JSON),
    sa.Column("result", sa.JSON),
    sa.Column("trace", sa.JSON),
)


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _applied_ids(bind: sa.Connection) -> list[int]:
    return list(
        bind.scalars(
            sa.select(items.c.id)
            .select_from(chunks)
            .join(
                items,
                sa.and_(
                    items.c.run_id == chunks.c.run_id,
                    items.c.id >= chunks.c.first_id,
                    items.c.id <= chunks.c.last_id,
                ),
            )
            .where(
                chunks.c.phase == "apply",
                chunks.c.done_at.is_not(None),
                items.c.outcome == "move",
                items.c.result.is_(None),
            )
        )
    )


def upgrade() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    planned = bind.execute(
        sa.select(
            items.c.id,
            items.c.run_id,
            items.c.lead_id,
            items.c.reason,
            items.c.after,
            items.c.result_json,
            leads.c.organization_id,
            decisions.c.facts,
        )
        .join(leads, leads.c.id == items.c.lead_id)
        .join(decisions, decisions.c.id == leads.c.decision_id)
        .where(items.c.result.is_(None), items.c.result_json.is_not(None), items.c.outcome == "move")
        .order_by(items.c.id)
    ).all()
    for item_id, run_id, lead_id, reason, after, result, organization_id, facts in planned:
        result = _loaded(result)
        if result is None:  # JSON null
            continue
        decision_id = bind.scalar(
            decisions.insert()
            .values(
                created_at=now,
                subject_type="lead",
                subject_id=lead_id,
                organization_id=organization_id,
                territory_model_id=_loaded(after).get("territory_model_id"),
                facts=_loaded(facts),
                result=result,
                trace={"reassignment_run_id": run_id, "reason": reason},
            )
            .returning(decisions.c.id)
        )
        bind.execute(items.update().where(items.c.id == item_id).values(decision_id=decision_id))
    bind.execute(items.update().where(items.c.result == "applied").values(result=None, result_reason=None))
    with op.batch_alter_table("reassignment_items") as batch:
        batch.drop_column("result_json")
        batch.drop_column("applied_at")
    with op.batch_alter_table("reassignment_chunks") as batch:
        batch.add_column(sa.Column("size", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reassignment_chunks") as batch:
        batch.drop_column("size")
    with op.batch_alter_table("reassignment_items") as batch:
        batch.add_column(sa.Column("result_json", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    applied = _applied_ids(bind)
    for start in range(0, len(applied), 500):
        bind.execute(
            items.update().where(items.c.id.in_(applied[start : start + 500])).values(result="applied")
        )
    # the decision a pending item names becomes the result the earlier apply stores again
    pending = bind.execute(
        sa.select(items.c.id, decisions.c.result)
        .join(decisions, decisions.c.id == items.c.decision_id)
        .where(items.c.result.is_(None), items.c.outcome == "move", decisions.c.subject_type == "lead")
        .where(sa.func.coalesce(items.c.after["decision_id"].as_integer(), 0) != items.c.decision_id)
    ).all()
    for item_id, result in pending:
        bind.execute(
            items.update().where(items.c.id == item_id).values(result_json=_loaded(result), decision_id=None)
        )
