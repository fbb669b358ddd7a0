"""Request and response models of the reference-data API (pydantic; pure).

Inputs forbid unknown fields, so protected fields (``id``, ``version``, ``organization_id`` where the
caller may not set it...) are refused with 422 instead of being ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from common.fields import NON_BLANK, WHITE_SPACE
from common.ids import Id
from common.principal import Role
from common.query import QueryModel
from directory.enums import CustomerSize, OrganizationKind, PartnerType, ProductLevel

Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NON_BLANK]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


def _iso_subdivision(code: str) -> str:
    if pycountry.subdivisions.get(code=code) is None:  # type: ignore[no-untyped-call]
        raise ValueError(f"{code!r} is not an ISO 3166-2 subdivision code")
    return code


#: An ISO 3166-2 subdivision code of any level (``FR-ARA``, ``FR-69``, ``US-CA``).
Subdivision = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$"),
    AfterValidator(_iso_subdivision),
]
PostalCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,19}$")]


def _subdivision_in_country(country: str | None, subdivision: str | None) -> None:
    if country is not None and subdivision is not None and not subdivision.startswith(country + "-"):
        raise ValueError(f"subdivision {subdivision!r} is not in country {country!r}")


Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80), NON_BLANK]
#: A web domain as people type it (``Example.COM`` is stored as ``example.com``).
Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=253,
        pattern=r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
    ),
]
Email = Annotated[
    str, StringConstraints(pattern=rf"^[^@{WHITE_SPACE}]{{1,64}}@[^@{WHITE_SPACE}]{{1,189}}$", max_length=254)
]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _drop_null_from_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    for name in getattr(model, "not_null", ()):
        prop = schema.get("properties", {}).get(name)
        if prop and "anyOf" in prop:
            options = [o for o in prop.pop("anyOf") if o != {"type": "null"}]
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})


class Patch(Input):
    """A partial update: a field left out keeps its value; ``null`` clears only nullable fields. The
    fields in ``not_null`` (NOT NULL columns) refuse ``null`` with 422, and the OpenAPI schema says so."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_drop_null_from_schema)
    not_null: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.not_null:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class IdPath(Input):
    id: Id


# --- partner programs ---------------------------------------------------------------------------------


class ProgramCreate(Input):
    key: Key
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    allows_registration: StrictBool = True


class ProgramUpdate(Patch):
    not_null = frozenset({"name", "allows_registration", "active"})
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    allows_registration: StrictBool | None = None
    active: StrictBool | None = None


class ProgramOut(Output):
    id: int
    key: str
    name: str
    description: str | None
    allows_registration: bool
    active: bool
    version: int


# --- organizations ------------------------------------------------------------------------------------


class MembershipIn(Input):
    program: Key
    tier: Short
    valid_from: date
    valid_to: date | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> MembershipIn:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class MembershipOut(BaseModel):
    program: str
    tier: str
    valid_from: date
    valid_to: date | None


class OrganizationCreate(Input):
    key: Key
    name: Name
    kind: OrganizationKind = OrganizationKind.PARTNER
    partner_type: PartnerType | None = None
    can_register_leads: StrictBool = False
    country: Country | None = None
    programs: list[MembershipIn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _partner_has_type(self) -> OrganizationCreate:
        if self.kind == OrganizationKind.PARTNER and self.partner_type is None:
            raise ValueError("a partner organization needs a partner_type")
        if self.kind == OrganizationKind.BRAND_OWNER and (self.partner_type or self.programs):
            raise ValueError("the brand owner has no partner_type or programs")
        return self


class OrganizationUpdate(Patch):
    not_null = frozenset({"name", "can_register_leads", "active"})
    name: Name | None = None
    partner_type: PartnerType | None = None
    can_register_leads: StrictBool | None = None
    country: Country | None = None
    programs: list[MembershipIn] | None = Field(None, max_length=50)
    active: StrictBool | None = None


class OrganizationOut(BaseModel):
    id: int
    key: str
    name: str
    kind: OrganizationKind
    partner_type: PartnerType | None
    can_register_leads: bool
    country: str | None
    programs: list[MembershipOut]
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime


# --- users and API keys -------------------------------------------------------------------------------


class UserCreate(Input):
    organization_id: Id | None = None
    key: Key
    email: Email
    name: Name
    roles: list[Role] = Field(min_length=1, max_length=8)
    manager_id: Id | None = None


class UserUpdate(Patch):
    not_null = frozenset({"email", "name", "roles", "active"})
    email: Email | None = None
    name: Name | None = None
    roles: list[Role] | None = Field(None, min_length=1, max_length=8)
    manager_id: Id | None = None
    active: StrictBool | None = None


class UserOut(Output):
    id: int
    organization_id: int
    key: str
    email: str
    name: str
    roles: list[Role]
    manager_id: int | None
    active: bool
    version: int


class ApiKeyCreate(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NON_BLANK]


class ApiKeyOut(Output):
    id: int
    user_id: int
    public_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    version: int


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key; shown this once and never again")


# --- customers and products ---------------------------------------------------------------------------


class CustomerCreate(Input):
    key: Key
    name: Name
    parent_key: Key | None = None
    country: Country
    subdivision: Subdivision | None = Field(None, description="ISO 3166-2 code of any level, e.g. FR-ARA")
    postal_code: PostalCode | None = None
    region: Short | None = None
    industry: Short | None = None
    size: CustomerSize | None = None
    domain: Domain | None = Field(None, description="web domain, e.g. example.com")

    @model_validator(mode="after")
    def _subdivision_of_country(self) -> CustomerCreate:
        _subdivision_in_country(self.country, self.subdivision)
        return self


class CustomerProposal(Input):
    """A new customer a partner proposes (the brand owner takes it into the customer master)."""

    name: Name
    country: Country
    subdivision: Subdivision | None = Field(None, description="ISO 3166-2 code of any level, e.g. FR-ARA")
    postal_code: PostalCode | None = None
    domain: Domain | None = Field(None, description="web domain, e.g. example.com")
    industry: Short | None = None
    size: CustomerSize | None = None

    @model_validator(mode="after")
    def _subdivision_of_country(self) -> CustomerProposal:
        _subdivision_in_country(self.country, self.subdivision)
        return self


class CustomerUpdate(Patch):
    not_null = frozenset({"name", "country", "active", "proposed"})
    name: Name | None = None
    parent_key: Key | None = None
    country: Country | None = None
    subdivision: Subdivision | None = None
    postal_code: PostalCode | None = None
    region: Short | None = None
    industry: Short | None = None
    size: CustomerSize | None = None
    domain: Domain | None = None
    active: StrictBool | None = None
    proposed: Literal[False] | None = Field(
        None, description="false takes a partner's proposal into the customer master (every partner sees it)"
    )


class CustomerOut(BaseModel):
    id: int
    key: str
    name: str
    parent_key: str | None
    country: str
    subdivision: str | None = None
    postal_code: str | None = None
    region: str | None
    industry: str | None
    size: CustomerSize | None
    domain: str | None
    proposed: bool = Field(description="a partner's proposal, not yet in the customer master")
    proposed_by_organization_id: int | None
    active: bool
    version: int


class ProductCreate(Input):
    key: Key
    name: Name
    level: ProductLevel
    parent_key: Key | None = None


class ProductUpdate(Patch):
    not_null = frozenset({"name", "active"})
    name: Name | None = None
    parent_key: Key | None = None
    active: StrictBool | None = None


class ProductOut(BaseModel):
    id: int
    key: str
    name: str
    level: ProductLevel
    parent_key: str | None
    active: bool
    version: int


class ImportReport(BaseModel):
    file: str
    created: int
    updated: int


class ListQuery(QueryModel, Input):
    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    q: Annotated[str, StringConstraints(max_length=100)] | None = Field(None, description="name contains")


class CustomerQuery(ListQuery):
    q: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None, description="name, key or web domain contains (case-insensitive)"
    )


class ImportQuery(Input):
    filename: Annotated[str, StringConstraints(pattern=r"^[\w.-]{1,100}$")] = "upload.csv"


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
