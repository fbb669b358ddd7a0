"""Response models of the people on a lead (pydantic; pure)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LeadPersonOut(BaseModel):
    user_id: int
    name: str
    email: str
    internal: bool = Field(description="one of the brand owner's people (e.g. the channel account manager)")
    roles: list[str] = Field(
        description="what the person is on the lead: owner, submitter, creator, approver, "
        "opportunity_owner, or a sales team role such as channel_account_manager"
    )


class LeadPeople(BaseModel):
    lead_id: int
    items: list[LeadPersonOut]
