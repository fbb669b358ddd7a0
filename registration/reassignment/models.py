"""Tables of batch reassignment: runs (a stored plan and its progress), one item per lead the plan
moves or keeps, the chunks a run is worked in, and assignment locks on leads and opportunities."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.database import Base, UtcDateTime


class ReassignmentRun(Base):
    """A plan (``kind`` plan or revert) evaluated over the leads in its scope, then applied in chunks."""

    __tablename__ = "reassignment_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    # The model the plan evaluates with (None: no model), and the active model when it was planned.
    territory_model_id: Mapped[int | None] = mapped_column(ForeignKey("territory_models.id"))
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("territory_models.id"))
    ruleset_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reverts_run_id: Mapped[int | None] = mapped_column(ForeignKey("reassignment_runs.id"))
    incremental: Mapped[bool] = mapped_column(Boolean, default=False)
    # An incremental plan's leads: per dimension, the members whose leads fall in the changed coverage
    # (worked out once, when the run is created, so the chunks need not hold both models).
    incremental_members: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    chunk_size: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # Counts: leads that exist, leads evaluated, and what the plan and the apply found.
    total_leads: Mapped[int] = mapped_column(Integer, default=0)
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    moved: Mapped[int] = mapped_column(Integer, default=0)
    kept: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    apply_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class ReassignmentItem(Base):
    """One lead of a plan: moved (``outcome`` move) or kept with why, before and after, and whether the
    apply skipped it (``result``). Unique per (run, lead): a chunk run twice adds and applies nothing
    twice."""

    __tablename__ = "reassignment_items"
    __table_args__ = (
        UniqueConstraint("run_id", "lead_id"),
        Index("ix_reassignment_items_run_id_id", "run_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reassignment_runs.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    lead_version: Mapped[int] = mapped_column(Integer)
    lead_status: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    territory_before: Mapped[str | None] = mapped_column(String(64))
    territory_after: Mapped[str | None] = mapped_column(String(64))
    cam_before: Mapped[str | None] = mapped_column(String(64))
    cam_after: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any]] = mapped_column(JSON)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the apply does with the lead's registration in flight (policy): reroute, move_team...
    action: Mapped[str | None] = mapped_column(String(20))
    # The decision the lead has once applied: the one the plan made when it re-decided the lead (stored
    # by the plan, its facts those of the lead's decision at the planned version), or the earlier one
    # a revert restores.
    decision_id: Mapped[int | None] = mapped_column(Integer)
    # Set only when the apply skipped the item (``skipped``, with why): an applied item is a move of a
    # finished apply chunk left as planned (``apply_service.applied_items``), not written again.
    result: Mapped[str | None] = mapped_column(String(20))
    result_reason: Mapped[str | None] = mapped_column(Text)


class ReassignmentChunk(Base):
    """One chunk of a run's plan or apply phase (a range of lead or item ids); a row with ``done_at``
    set is finished, so a resumed run skips it."""

    __tablename__ = "reassignment_chunks"
    __table_args__ = (UniqueConstraint("run_id", "phase", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("reassignment_runs.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(10))
    number: Mapped[int] = mapped_column(Integer)
    first_id: Mapped[int] = mapped_column(Integer)
    last_id: Mapped[int] = mapped_column(Integer)
    # The leads of a chunk of an incremental plan (a few of its range), chosen when the chunk was cut.
    lead_ids: Mapped[list[int] | None] = mapped_column(JSON(none_as_null=True))
    # How many items an apply chunk covers (its range holds kept items too); None where not counted.
    size: Mapped[int | None] = mapped_column(Integer)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AssignmentLock(Base):
    """A lead or opportunity that batch reassignment leaves where it is, with who, when and why."""

    __tablename__ = "assignment_locks"
    __table_args__ = (UniqueConstraint("subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    locked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    locked_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TerritoryFreeze(Base):
    """A territory of one model whose leads batch reassignment leaves where they are (no lead leaves it
    or enters it, nor any territory below it), with who, when and why."""

    __tablename__ = "territory_freezes"
    __table_args__ = (UniqueConstraint("territory_model_id", "territory_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    territory_model_id: Mapped[int] = mapped_column(ForeignKey("territory_models.id", ondelete="CASCADE"))
    territory_key: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    frozen_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    frozen_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
