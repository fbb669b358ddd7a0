"""Stored rulesets (immutable versions: draft -> active -> archived, one active per kind) and stored
assignment decisions with their traces."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, Select, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.database import Base, UtcDateTime


class RulesetStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class StoredRuleset(Base):
    __tablename__ = "rulesets"
    __table_args__ = (
        UniqueConstraint("kind", "version_hash"),
        Index(
            "uq_rulesets_one_active_per_kind",
            "kind",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    version_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[RulesetStatus] = mapped_column(String(20), default=RulesetStatus.DRAFT)
    source: Mapped[str] = mapped_column(Text)
    ast: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(Integer)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}


#: Per subject type whose subjects name their decision in force (a lead does): a query of (subject id,
#: decision id) for those subjects. Such a subject may have a later decision not in force (a
#: reassignment plan stores the decisions it makes before they are applied); ``decision_service.preview``
#: re-decides the decision in force, and the latest one only of subjects no such query names.
DECISIONS_IN_FORCE: dict[str, Callable[[], Select[int, int | None]]] = {}


#: A decision of a lead made outside a batch run (a submission, the API).
_LEAD_DECIDED_OUTSIDE_RUNS = "subject_type = 'lead' AND planned_by_run_id IS NULL"


class StoredDecision(Base):
    __tablename__ = "decisions"
    __table_args__ = (
        # an incremental reassignment plan looks for the leads decided with another model: those
        # decided outside runs here, those a run moved by the run's items (a run's decisions are many,
        # and not in force until applied)
        Index(
            "ix_decisions_lead_model_outside_runs",
            "territory_model_id",
            postgresql_where=text(_LEAD_DECIDED_OUTSIDE_RUNS),
            sqlite_where=text(_LEAD_DECIDED_OUTSIDE_RUNS),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int | None] = mapped_column(Integer, index=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    territory_model_id: Mapped[int | None] = mapped_column(ForeignKey("territory_models.id"))
    # The batch (reassignment) run whose plan made it, in force once the run applies it to its lead;
    # None: made by a submission or the API.
    planned_by_run_id: Mapped[int | None] = mapped_column(Integer)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    trace: Mapped[dict[str, Any]] = mapped_column(JSON)
