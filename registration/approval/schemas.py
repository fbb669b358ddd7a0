"""Request and response models of approvals, tasks and the worklist (pydantic; pure)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from common.fields import NON_BLANK
from common.query import QueryModel
from directory.schemas import Input
from registration.leads.lifecycle import RegistrationStatus

Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), NON_BLANK]
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class ApproveIn(Input):
    comment: Comment | None = Field(None, description="optional; kept in the history")


class RejectIn(Input):
    comment: Comment = Field(description="why the registration is rejected (required; the partner sees it)")


class RequestInfoIn(Input):
    question: Comment = Field(description="what the submitter should tell the approvers")


class SubmitInfoIn(Input):
    text: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000), NON_BLANK
    ] = Field(description="the answer; stored as a note of the lead")


class WithdrawIn(Input):
    comment: Comment | None = None


class ApproverOut(BaseModel):
    user_id: int
    user: str
    role: str
    source: str
    decision: str | None
    comment: str | None
    decided_at: datetime | None


class StepOut(BaseModel):
    position: int
    name: str
    mode: str
    status: str
    decided_at: datetime | None
    approvers: list[ApproverOut]


class RoundOut(BaseModel):
    id: int
    lead_id: int
    number: int
    decision_id: int | None
    status: str
    current_step: int | None = Field(description="position of the step waiting for a decision")
    started_at: datetime
    started_by: int | None
    ended_at: datetime | None
    steps: list[StepOut]


class RoundList(BaseModel):
    items: list[RoundOut]


class TaskOut(BaseModel):
    id: int
    lead_id: int
    round_id: int | None
    kind: str
    status: str
    assignee_user_id: int | None
    question: str
    requested_by: int | None
    answer: str | None
    answer_note_id: int | None
    answered_by: int | None
    answered_at: datetime | None
    created_at: datetime


class TaskList(BaseModel):
    items: list[TaskOut]


class WorklistSort(StrEnum):
    OLDEST = "oldest"
    NEWEST = "newest"


class WorklistStatus(StrEnum):
    PENDING_APPROVAL = RegistrationStatus.PENDING_APPROVAL.value
    INFO_REQUESTED = RegistrationStatus.INFO_REQUESTED.value


class WorklistQuery(QueryModel, Input):
    status: WorklistStatus | None = Field(None, description="default: both waiting statuses")
    territory: Key | None = Field(None, description="only registrations with this territory on their team")
    min_age_days: int | None = Field(None, ge=0, le=36500, description="submitted at least this long ago")
    sort: WorklistSort = Field(WorklistSort.OLDEST, description="by submission (round start)")
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)


class WorklistItem(BaseModel):
    lead_id: int
    registration_number: str | None
    name: str
    status: RegistrationStatus
    organization_id: int | None
    customer_id: int | None
    deal_size: float | None
    currency: str | None
    territories: list[str]
    round_id: int
    round_number: int
    step: str
    step_position: int
    submitted_at: datetime
    age_days: int
    version: int
