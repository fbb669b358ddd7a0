"""Request and response models of lead acceptance and offers (pydantic; pure)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from common.ids import Id
from directory.schemas import Input


class OfferIn(Input):
    """The partner organizations an unaccepted lead is offered to (replaces the list; empty: none)."""

    organization_ids: list[Id] = Field(max_length=50)


class OffersOut(BaseModel):
    lead_id: int
    accepted: bool
    organization_ids: list[int] = Field(
        description="partner organizations the lead is offered to (a partner sees only its own)"
    )
