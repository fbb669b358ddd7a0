"""Request and response models of batch reassignment and assignment locks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from common.fields import NON_BLANK
from common.ids import Id
from directory.schemas import Input
from registration.leads.lifecycle import RegistrationStatus
from registration.reassignment.planning import ItemOutcome, ItemResult, RunKind, RunStatus

Key = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]


class PlanScope(Input):
    """Which leads a plan evaluates (all leads that were ever assigned, when empty)."""

    status: list[RegistrationStatus] | None = Field(None, max_length=10, description="registration statuses")
    partner: Key | None = Field(None, description="the primary partner's organization key")
    territory: Key | None = Field(None, description="a territory on the lead's territory team now")
    updated_since: AwareDatetime | None = Field(None, description="leads changed at or after this time")


class RunCreate(Input):
    territory_model_id: Id | None = Field(
        None, description="the model to realign to (planning or active); default: the active model"
    )
    ruleset_ids: list[Id] = Field(
        default_factory=list,
        max_length=10,
        description="ruleset versions (drafts too) standing in for their kinds",
    )
    where: PlanScope = Field(default_factory=PlanScope)
    chunk_size: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="leads per chunk, at most (an incremental plan's few leads are spread over at least 8 chunks)",
    )
    full: bool = Field(
        False, description="evaluate every lead in scope even when only a few territories changed"
    )


class RunPath(Input):
    id: Id


class RunOut(BaseModel):
    id: int
    kind: RunKind
    status: RunStatus
    territory_model_id: int | None
    base_model_id: int | None
    ruleset_ids: list[int]
    scope: dict[str, Any]
    reverts_run_id: int | None
    incremental: bool
    content_hash: str | None
    total_leads: int = Field(description="leads in scope")
    evaluated: int = Field(description="leads the plan evaluated (fewer than total when incremental)")
    moved: int
    kept: int
    applied: int
    skipped: int
    progress: float = Field(description="finished chunks of the current phase, 0 to 1")
    cancel_requested: bool
    created_at: datetime
    planned_at: datetime | None
    apply_started_at: datetime | None
    finished_at: datetime | None


class CountChange(BaseModel):
    before: int
    after: int


class RunSummary(RunOut):
    by_territory: dict[str, CountChange] = Field(
        description="moved leads per lowest territory, before -> after"
    )
    by_cam: dict[str, CountChange] = Field(description="moved leads per CAM, before -> after")
    kept_by_reason: dict[str, int]


class ItemQuery(Input):
    outcome: ItemOutcome | None = Field(None, description="move or keep")
    territory: Key | None = Field(None, description="lowest territory before or after")
    result: ItemResult | None = Field(None, description="what the apply did")
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)


class ItemOut(BaseModel):
    id: int
    lead_id: int
    lead_version: int
    lead_status: str
    outcome: ItemOutcome
    reason: str
    action: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    decision_id: int | None = Field(
        description="the decision the lead has once applied: the one the plan made (explained at "
        "/v1/decisions/{id} before the apply), or the earlier one a revert restores"
    )
    result: ItemResult | None
    result_reason: str | None
    applied_at: datetime | None


class RunList(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = None


class RunListQuery(Input):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)


# --- locks --------------------------------------------------------------------------------------------


class LockIn(Input):
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), NON_BLANK
    ] = Field(description="why batch reassignment must leave the record where it is")


class LockOut(BaseModel):
    subject_type: str
    subject_id: int
    locked: bool
    reason: str | None = None
    locked_by: int | None = None
    locked_at: datetime | None = None


class FreezeOut(BaseModel):
    territory_model_id: int
    territory_key: str
    frozen: bool
    reason: str | None = None
    frozen_by: int | None = None
    frozen_at: datetime | None = None
