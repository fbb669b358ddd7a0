"""Request and response models of the decision endpoints: what-if, stored decisions, why-not, preview."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints

from common.ids import Id
from common.query import QueryModel
from rules.vocabulary import MAX_NUMBER

#: Numbers within what both evaluators compare (``rules.vocabulary.MAX_NUMBER``), declared so.
FactValue = (
    Annotated[str, StringConstraints(max_length=200)]
    | Annotated[StrictInt, Field(ge=-MAX_NUMBER, le=MAX_NUMBER)]
    | Annotated[StrictFloat, Field(ge=-MAX_NUMBER, le=MAX_NUMBER)]
    | None
)
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionIdPath(Input):
    id: Id


class ModelIdPath(Input):
    id: Id


class WhatIfRequest(Input):
    """Lead facts to decide on, optionally against a planning model and draft rulesets."""

    facts: dict[Annotated[str, StringConstraints(max_length=64)], FactValue] = Field(
        description="lead facts: customer, product, program, partner, geography, deal_size, registration_type..."
    )
    territory_model_id: Id | None = Field(None, description="default: the active model")
    ruleset_ids: list[Id] = Field(
        default_factory=list,
        max_length=3,
        description="rulesets (any status) used instead of the active ones",
    )


class Detail(StrEnum):
    SUMMARY = "summary"
    FULL = "full"


class DetailQuery(QueryModel, Input):
    detail: Detail = Field(
        Detail.SUMMARY,
        description="summary: the trace explains every matching territory and the closest losing ones, "
        "counting the other losers by reason; full: every losing candidate explained",
    )


class DecideRequest(Input):
    facts: dict[Annotated[str, StringConstraints(max_length=64)], FactValue]


class WhyNotQuery(QueryModel, Input):
    territory: Key | None = None
    user: Key | None = None


class FactWarning(BaseModel):
    """A fact naming a member its dimension does not know: the lead matches only the territories that
    leave that dimension unrestricted (usually the root)."""

    code: str = Field(description="unknown_value")
    field: str = Field(description="the dimension (fact) concerned")
    value: str
    message: str
    did_you_mean: list[str] = Field(description="close spellings the model knows")


class DecisionOut(BaseModel):
    id: int | None = Field(None, description="absent for what-if answers, which are not stored")
    created_at: datetime | None = None
    territory_model_id: int | None
    facts: dict[str, Any] = Field(description="the facts used, after enrichment from reference data")
    result: dict[str, Any]
    trace: dict[str, Any]
    warnings: list[FactWarning] = Field(
        default_factory=list, description="facts naming members the territory model does not know"
    )


class WhyNotOut(BaseModel):
    decision_id: int
    territory_model_version: str | None = Field(
        None, description="the territory model version the decision used (the answer is computed on it)"
    )
    territory: dict[str, Any] | None = None
    user: dict[str, Any] | None = None


class PreviewRequest(Input):
    ruleset_ids: list[Id] = Field(default_factory=list, max_length=3)
    sample: int = Field(20, ge=0, le=200)


class MovedLead(BaseModel):
    decision_id: int
    subject_type: str
    subject_id: int | None
    before: dict[str, Any]
    after: dict[str, Any]


class PreviewOut(BaseModel):
    territory_model_id: int
    evaluated: int
    moved: int
    by_territory: dict[str, dict[str, int]] = Field(description="lowest territory -> {before, after}")
    by_cam: dict[str, dict[str, int]] = Field(description="CAM user -> {before, after}")
    sample: list[MovedLead]
