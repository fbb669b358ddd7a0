"""Request and response models of registration expiry: the expiry change, the registrations expiring
soon and the sweep (pydantic; pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from directory.schemas import Input


class ExpiryIn(Input):
    expires_at: AwareDatetime = Field(description="the new expiry date and time (with its UTC offset)")


class ExpiringQuery(Input):
    within_days: int = Field(30, ge=0, le=3650, description="expiring between now and this many days")
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)


class ExpiringItem(BaseModel):
    lead_id: int
    registration_number: str | None
    name: str
    organization_id: int | None
    expires_at: datetime
    days_left: int
    opportunity_id: int | None


class ExpirySweepIn(Input):
    """An expiry run; without a body it runs as of now."""

    model_config = ConfigDict(extra="forbid", openapi_extra={"required": False})  # type: ignore[typeddict-unknown-key]

    as_of: AwareDatetime | None = Field(
        None,
        description="expire as of this time (with its UTC offset) instead of now, like the command "
        "line's --now: a scheduler catching up, or a test",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_body(cls, data: Any) -> Any:
        return {} if data is None else data


class ExpirySweepOut(BaseModel):
    """What one expiry run did; a second run at the same time expires nothing."""

    checked_at: datetime
    expired: int = Field(description="registrations this run moved to expired")
    registration_numbers: list[str] = Field(
        description="the registrations this run expired, in id order (the first 1,000; ``expired`` counts all)"
    )
    expired_total: int = Field(description="expired registrations in the database after the run")
    approved_remaining: int = Field(description="approved registrations still protected")
