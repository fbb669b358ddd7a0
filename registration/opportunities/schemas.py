"""Request and response models of opportunities (pydantic; pure)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from common.fields import NON_BLANK
from common.ids import Id
from directory.schemas import Input, Patch
from registration.leads.schemas import Currency, Money
from registration.opportunities.opportunity import OpportunityStatus


class CloseStatus(StrEnum):
    WON = OpportunityStatus.WON.value
    LOST = OpportunityStatus.LOST.value


class CloseIn(Input):
    status: CloseStatus
    comment: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), NON_BLANK]
        | None
    ) = None


class RevenueLinePath(Input):
    id: Id
    line_id: Id


class RevenueLineUpdate(Patch):
    """A change of one revenue line: a field left out keeps its value, ``null`` clears it (a line
    without a price); at least one field."""

    # every field is nullable, so Patch's schema hook has nothing to drop; say "not empty" instead
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    amount: Money | None = None
    currency: Currency | None = Field(None, description="ISO 4217 code, e.g. EUR")

    @model_validator(mode="after")
    def _something_to_change(self) -> RevenueLineUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one of amount and currency")
        return self


class OpportunityListQuery(Input):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)
    status: OpportunityStatus | None = None
    lead_id: Id | None = None


class RevenueLineOut(BaseModel):
    id: int
    product_id: int
    primary: bool
    amount: Money | None
    currency: str | None


class ContactOut(BaseModel):
    id: int
    name: str | None
    email: str | None
    phone: str | None
    primary: bool


class OpportunityNoteOut(BaseModel):
    id: int
    lead_note_id: int | None
    author_user_id: int | None
    text: str
    written_at: datetime


class ActivityOut(BaseModel):
    id: int
    kind: str
    subject: str
    actor_user_id: int | None
    occurred_at: datetime
    details: dict[str, Any] | None


class OpportunityTeamMemberOut(BaseModel):
    user_id: int
    role: str
    source: str


class RegistrationLink(BaseModel):
    lead_id: int
    registration_number: str | None
    registration_type: str | None
    status: str
    expires_at: datetime | None


class OpportunityOut(BaseModel):
    id: int
    number: str
    name: str
    description: str | None
    status: OpportunityStatus
    organization_id: int | None
    customer_id: int | None
    program_id: int | None
    owner_user_id: int | None
    amount: Money | None
    currency: str | None
    expected_close_date: date | None
    registration: RegistrationLink
    revenue_lines: list[RevenueLineOut]
    contacts: list[ContactOut]
    notes: list[OpportunityNoteOut]
    activities: list[ActivityOut]
    sales_team: list[OpportunityTeamMemberOut]
    closed_at: datetime | None
    closed_by: int | None
    close_comment: str | None
    created_at: datetime
    updated_at: datetime
    version: int
