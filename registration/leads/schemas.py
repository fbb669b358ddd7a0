"""Request and response models of the leads API (pydantic; pure).

Inputs forbid unknown fields, so the protected fields (``status``, ``organization_id``, ``owner_user_id``,
``registration_number``, ``expires_at``, ``version``... in any spelling) are refused with 422 instead of
being ignored: nobody sets them through a request body.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, Field, PlainSerializer, StrictBool, model_validator

from common.fields import Declares
from common.ids import Id
from common.query import QueryModel
from directory.enums import PartnerType
from directory.schemas import Country, Email, IdPath, Input, Key, Name, Output, Patch
from registration.leads.lifecycle import LeadStatus, RegistrationStatus
from rules.decision_schemas import FactWarning

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Text = Annotated[str, Field(max_length=4000)]
Phone = Annotated[str, Field(pattern=r"^[0-9+()./ -]{3,40}$")]
#: Deal amounts as text (a JSON number is taken too): digits, at most two decimals, within `Money`'s bounds.
MONEY_TEXT = r"^(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?$"
#: Deal amounts: non-negative, two decimals, within what the rules engines compare exactly.
Money = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("9999999999999.99"), max_digits=15, decimal_places=2),
    Declares.of({"pattern": MONEY_TEXT}, branch="string"),
    Declares.of({"multipleOf": 0.01}, branch="number"),
    PlainSerializer(float, return_type=float, when_used="json"),
]

__all__ = ["Country", "IdPath"]


class RegistrationType(StrEnum):
    CO_SELL = "co_sell"
    REFERRAL = "referral"
    RESALE = "resale"


class SalesChannel(StrEnum):
    PARTNER = "partner"
    DIRECT = "direct"


class DealStatus(StrEnum):
    """The deal's open/won/lost (an opportunity's status) that a lead kept from a transfer carries."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class LeadProductIn(Input):
    product_id: Id
    primary: StrictBool = False


def _check_products(products: list[LeadProductIn] | None) -> None:
    if not products:
        return
    ids = [p.product_id for p in products]
    if len(set(ids)) != len(ids):
        raise ValueError("a product is listed twice")
    if sum(p.primary for p in products) > 1:
        raise ValueError("at most one product may be primary")


class LeadFields(Input):
    """Fields a caller may set on a lead (the same on create and update)."""

    description: Text | None = None
    customer_id: Id | None = None
    contact_name: Name | None = None
    contact_email: Email | None = None
    contact_phone: Phone | None = None
    registration_type: RegistrationType | None = None
    partner_type: PartnerType | None = None
    program: Key | None = Field(None, description="key of the partner program the lead registers under")
    primary_partner_id: Id | None = Field(None, description="the partner organization the lead is for")
    deal_size: Money | None = None
    currency: Currency | None = None
    expected_close_date: date | None = None


class LeadCreate(LeadFields):
    name: Name
    products: list[LeadProductIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _products_ok(self) -> LeadCreate:
        _check_products(self.products)
        return self


class LeadUpdate(LeadFields, Patch):
    """A partial update: fields left out keep their value; ``products`` replaces the whole list."""

    not_null = frozenset({"name", "products"})
    name: Name | None = None
    products: list[LeadProductIn] | None = Field(None, max_length=50)

    @model_validator(mode="after")
    def _products_ok(self) -> LeadUpdate:
        _check_products(self.products)
        return self


class IdempotencyHeader(BaseModel):
    """``Idempotency-Key``: a retry with the same key and body gets the first reply, and no second lead."""

    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="a unique key per create (e.g. a UUID); kept per organization",
    )

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The schema, built once per arguments and copied: the request validation of flask-openapi3
        asks for a header model's schema on every request (0.8 ms of a create). Copied through orjson
        (a schema is JSON): 1 us, where ``copy.deepcopy`` took 7."""
        key = (cls, args, tuple(sorted(kwargs.items())))
        schema = _HEADER_SCHEMAS.get(key)
        if schema is None:
            schema = _HEADER_SCHEMAS[key] = super().model_json_schema(*args, **kwargs)
        copied: dict[str, Any] = orjson.loads(orjson.dumps(schema))
        return copied


_HEADER_SCHEMAS: dict[Any, dict[str, Any]] = {}


class LeadListQuery(QueryModel, Input):
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)
    status: RegistrationStatus | None = None


class LeadProductOut(Output):
    product_id: int
    primary: bool
    amount: Money | None = Field(None, description="the line's own price, where the lead has one")
    currency: str | None = None


class LeadContactOut(Output):
    """One of the lead's own contacts (a transfer kept as a lead carries several; the primary one is
    also the lead's contact fields)."""

    id: int
    name: str | None
    email: str | None
    phone: str | None
    role: str | None
    primary: bool


class LeadActivityOut(Output):
    """Something done or planned on the lead (a transfer kept as a lead carries them); the opportunity
    takes them over."""

    id: int
    kind: str
    subject: str
    occurred_at: datetime
    due_date: date | None = None
    done: bool | None = None


class SalesTeamMemberOut(Output):
    user_id: int
    role: str
    source: str


class LeadTerritoryOut(Output):
    territory: str
    territory_model_id: int | None


class LeadOut(BaseModel):
    id: int
    organization_id: int | None
    name: str
    description: str | None
    customer_id: int | None
    contact_name: str | None
    contact_email: str | None
    contact_phone: str | None
    registration_type: RegistrationType | None
    partner_type: str | None
    program: str | None
    primary_partner_id: int | None
    deal_size: Money | None
    currency: str | None
    expected_close_date: date | None
    stage: str | None = Field(
        None, description="the deal's sales stage, where a transfer kept as a lead carries one"
    )
    deal_status: DealStatus | None = Field(
        None,
        description="the deal's open/won/lost, where a transfer kept as a lead carries it; the opportunity "
        "the lead converts into takes it over with the stage",
    )
    products: list[LeadProductOut]
    contacts: list[LeadContactOut] = Field(
        default_factory=list, description="the lead's own contacts, where it has several (else: contact_*)"
    )
    activities: list[LeadActivityOut] = Field(default_factory=list)
    sales_channel: str
    accepted: bool
    owner_user_id: int | None
    created_by: int | None
    status: RegistrationStatus
    lead_status: LeadStatus = Field(
        LeadStatus.OPEN, description="converted once the registration is approved"
    )
    registration_number: str | None
    submitted_at: datetime | None
    decision_id: int | None
    expires_at: datetime | None
    opportunity_id: int | None = Field(
        None, description="the opportunity an approval converted the lead into"
    )
    sales_team: list[SalesTeamMemberOut]
    territory_team: list[LeadTerritoryOut]
    created_at: datetime
    updated_at: datetime
    version: int
    warnings: list[FactWarning] = Field(
        default_factory=list,
        description="in a submit answer: facts naming members the territory model does not know (the "
        "registration went to the territories unrestricted on them; the policy may refuse instead)",
    )


class NoteIn(Input):
    text: Annotated[str, Field(min_length=1, max_length=10000)]


class NoteOut(Output):
    id: int
    lead_id: int
    author_user_id: int | None
    text: str
    created_at: datetime


class NoteList(BaseModel):
    items: list[NoteOut]


class HistoryEntry(BaseModel):
    id: int
    occurred_at: datetime
    actor_user_id: int | None
    actor_organization_id: int | None
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    details: dict[str, Any] | None


class HistoryOut(BaseModel):
    items: list[HistoryEntry]


class MissingField(BaseModel):
    field: str
    pointer: str


class PreviewApprover(BaseModel):
    step: str
    mode: str
    user: str
    role: str
    why: str


class ApproverPreviewOut(BaseModel):
    """Who would approve the lead if it were submitted now, and why; nothing is stored."""

    lead_id: int
    submittable: bool
    missing_fields: list[MissingField]
    blockers: list[str] = Field(description="why the partner's agreement or membership would refuse it")
    approvers: list[PreviewApprover]
    lowest_territories: list[str]
    result: dict[str, Any]
    rulesets: dict[str, Any]
    trace: dict[str, Any] | None = Field(None, description="the full trace; internal callers only")
    warnings: list[FactWarning] = Field(
        default_factory=list,
        description="facts naming members the territory model does not know (the policy's unknown_values "
        "may make submit refuse them: then submittable is false)",
    )
