"""Request and response models of the duplicate check and the lead acceptance (pydantic; pure)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from common.fields import NON_BLANK
from common.ids import Id
from directory.schemas import Input

#: A name or e-mail to search for; no control characters (PostgreSQL refuses NUL in text).
Contact = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=254, pattern=r"^[^\x00-\x1f\x7f]+$"),
    NON_BLANK,
]


class DuplicateKind(StrEnum):
    REGISTRATION = "registration"
    OPPORTUNITY = "opportunity"


class DuplicatesQuery(Input):
    limit: int = Field(50, ge=1, le=200, description="at most this many matches, strongest first")


class DuplicateSearchQuery(Input):
    """Every criterion given must match; at least one is needed."""

    customer_id: Id | None = Field(None, description="a customer; its account hierarchy matches too")
    contact: Contact | None = Field(
        None, description="a primary contact's e-mail address or (part of a) name"
    )
    product_id: Id | None = Field(None, description="a product; products of the same group match too")
    limit: int = Field(50, ge=1, le=200, description="at most this many matches, strongest first")


class DuplicateOut(BaseModel):
    kind: DuplicateKind
    id: int
    number: str | None = Field(description="registration number or opportunity number")
    name: str
    status: str
    organization_id: int | None = Field(description="the partner organization the record belongs to")
    customer_id: int | None
    primary_product_id: int | None
    score: int = Field(ge=0, le=100)
    evidence: list[str] = Field(description="what made it a match, strongest first")


class DuplicatesOut(BaseModel):
    lead_id: int | None = Field(None, description="the registration checked (None for a search)")
    rule: str
    items: list[DuplicateOut]
