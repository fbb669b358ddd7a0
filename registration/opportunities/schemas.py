"""Request and response models of opportunities (pydantic; pure)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from common.fields import NON_BLANK
from common.ids import Id
from directory.schemas import Email, Input, Name, Patch
from registration.leads.schemas import Currency, Money, Phone
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


# --- editing -----------------------------------------------------------------------------------------

#: A line of text that is not blank (names, stages, subjects).
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), NON_BLANK]
LongText = Annotated[str, StringConstraints(max_length=20_000)]
NoteText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000), NON_BLANK
]
Stage = Annotated[Line, Field(max_length=100, description="the sales stage in your words, e.g. Negotiation")]
ContactRole = Annotated[Line, Field(max_length=100, description="e.g. decision maker")]
ActivityKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="e.g. call, meeting")]
Subject = Annotated[Line, Field(max_length=300)]


def _not_empty(model: BaseModel, names: str) -> None:
    if not model.model_fields_set:
        raise ValueError(f"send at least one of {names}")


class OpportunityPatch(Patch):
    """A change of the opportunity's own fields: a field left out keeps its value; ``null`` clears the
    nullable ones. Status, owner, amounts, registration and expiry are not changed here (close,
    revenue lines, the registration's own endpoints)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    not_null = frozenset({"name"})

    name: Annotated[Line, Field(max_length=200)] | None = None
    stage: Stage | None = None
    expected_close_date: date | None = None
    description: LongText | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> OpportunityPatch:
        _not_empty(self, "name, stage, expected_close_date and description")
        return self


class ContactIn(Input):
    """A contact at the customer; at least a name or an e-mail address. ``primary`` makes it the one
    primary contact (the others stop being primary)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"anyOf": [{"required": ["name"]}, {"required": ["email"]}]}
    )
    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    role: ContactRole | None = None
    primary: bool = False

    @model_validator(mode="after")
    def _named(self) -> ContactIn:
        if not (self.name or self.email):
            raise ValueError("a contact needs a name or an e-mail address")
        return self


class ContactPatch(Patch):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    not_null = frozenset({"primary"})

    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    role: ContactRole | None = None
    primary: bool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ContactPatch:
        _not_empty(self, "name, email, phone, role and primary")
        return self


class NoteIn(Input):
    text: NoteText


class NotePatch(Patch):
    model_config = ConfigDict(extra="forbid")
    not_null = frozenset({"text"})

    text: NoteText


class ActivityIn(Input):
    """Something done or planned on the deal: a call, a meeting, a task with a due date."""

    kind: ActivityKind = "task"
    subject: Subject
    due_date: date | None = None
    done: bool = False


class ActivityPatch(Patch):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})
    not_null = frozenset({"kind", "subject", "done"})

    kind: ActivityKind | None = None
    subject: Subject | None = None
    due_date: date | None = None
    done: bool | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> ActivityPatch:
        _not_empty(self, "kind, subject, due_date and done")
        return self


class ContactPath(Input):
    id: Id
    contact_id: Id


class NotePath(Input):
    id: Id
    note_id: Id


class ActivityPath(Input):
    id: Id
    activity_id: Id


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
    role: str | None
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
    due_date: date | None
    done: bool | None
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
    stage: str | None
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
