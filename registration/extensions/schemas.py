"""Request and response models of registration extension requests (pydantic; pure)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from common.ids import Id
from directory.schemas import Input
from registration.approval.schemas import Comment
from registration.extensions.extension import ExtensionStatus


class ExtensionRequestIn(Input):
    expires_at: AwareDatetime = Field(description="the expiry asked for (later than the current one)")
    reason: Comment = Field(description="why the deal needs longer protection (the approvers see it)")


class ExtensionGrantIn(Input):
    comment: Comment | None = Field(None, description="optional; kept in the history")
    expires_at: AwareDatetime | None = Field(
        None, description="the expiry granted (default: the one requested)"
    )


class ExtensionRejectIn(Input):
    comment: Comment = Field(description="why the extension is refused (required; the partner sees it)")


class ExtensionOut(BaseModel):
    id: int
    lead_id: int
    status: ExtensionStatus
    requested_by: int | None
    requested_expires_at: datetime
    reason: str
    previous_expires_at: datetime | None = Field(description="granted: the expiry it replaced")
    decided_by: int | None
    decided_at: datetime | None
    comment: str | None
    created_at: datetime


class ExtensionList(BaseModel):
    items: list[ExtensionOut]
    granted: int = Field(description="extensions granted so far")
    max_extensions: int | None = Field(description="the registration's policy maximum (null: no limit)")
    remaining: int | None = Field(description="extensions that may still be granted (null: no limit)")


class ExtensionPath(Input):
    id: Id
    request_id: Id
