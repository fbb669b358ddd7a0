"""Request and response models of the transfer API (pydantic; pure)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from common.fields import YAML_TEXT
from common.ids import Id
from directory.schemas import Input, Key, Patch

Secret = Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{32,100}$")]
ProfileText = Annotated[str, Field(min_length=1, max_length=200_000), YAML_TEXT]
Url = Annotated[str, Field(min_length=8, max_length=2048)]
Timeout = Annotated[float, Field(ge=0.5, le=120)]


class Operation(StrEnum):
    """The three interfaces: create (transfer), update (send update), query (receive update)."""

    CREATE = "create"
    UPDATE = "update"
    QUERY = "query"


class InboundCreates(StrEnum):
    LEAD = "lead"
    OPPORTUNITY = "opportunity"


class RemoteType(StrEnum):
    """What a transfer is on the partner's side: its lead or its opportunity (separate id spaces)."""

    LEAD = "lead"
    OPPORTUNITY = "opportunity"


class TransferState(StrEnum):
    IN_PROGRESS = "in_progress"
    SUCCESSFUL = "successful"
    UPDATE_PENDING = "update_pending"
    FAILED = "failed"


class ConnectionIn(Input):
    organization_id: Id
    key: Key = Field(description="names the connection in the partner's inbound path")
    name: str = Field(min_length=1, max_length=200)
    base_url: Url
    operations: list[Operation] = Field(min_length=1, max_length=3)
    signing_secret: Secret = Field(description="signs our calls to the partner; never returned")
    inbound_secret: Secret = Field(description="verifies the partner's calls to us; never returned")
    timeout_seconds: Timeout = 10.0
    profile: ProfileText = Field(description="mapping profile (YAML) of the partner's data model")
    inbound_profile: ProfileText | None = Field(
        None, description="the model the partner speaks to us in; default: our own names"
    )
    inbound_creates: InboundCreates = InboundCreates.OPPORTUNITY
    transfer_on_approval: bool = False
    send_updates_automatically: bool = Field(
        False, description="each change of a transferred opportunity queues its update to the partner"
    )


class ConnectionPatch(Patch):
    not_null = frozenset(
        {"name", "base_url", "operations", "signing_secret", "inbound_secret", "timeout_seconds", "profile"}
        | {"inbound_creates", "transfer_on_approval", "send_updates_automatically", "active"}
    )

    name: str | None = Field(None, min_length=1, max_length=200)
    base_url: Url | None = None
    operations: list[Operation] | None = Field(None, min_length=1, max_length=3)
    signing_secret: Secret | None = None
    inbound_secret: Secret | None = None
    timeout_seconds: Timeout | None = None
    profile: ProfileText | None = None
    inbound_profile: ProfileText | None = None
    inbound_creates: InboundCreates | None = None
    transfer_on_approval: bool | None = None
    send_updates_automatically: bool | None = None
    active: bool | None = None


class ConnectionOut(BaseModel):
    id: int
    organization_id: int
    key: str
    name: str
    base_url: str
    operations: list[Operation]
    signing_secret_last4: str
    inbound_secret_last4: str
    timeout_seconds: float
    profile_name: str
    profile: str
    inbound_profile: str | None
    inbound_creates: InboundCreates
    transfer_on_approval: bool
    send_updates_automatically: bool
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


class ConnectionList(BaseModel):
    items: list[ConnectionOut]


class TransferIn(Input):
    partner_organization_id: Id


class PartnerIn(Input):
    partner_organization_id: Id


class CorrelationOut(BaseModel):
    kind: str
    local_id: int
    remote_id: str
    deleted_at: datetime | None = Field(
        None, description="a tombstone: the child was deleted on one side, and is on the other"
    )


class TransferOut(BaseModel):
    id: int
    connection_id: int
    partner_organization_id: int
    opportunity_id: int | None
    lead_id: int | None
    origin: str
    status: TransferState
    remote_id: str | None = Field(description="the partner's id of the record")
    remote_type: str | None = Field(
        description="what the partner keeps the record as: lead, opportunity, or its own object's name"
    )
    last_operation: str | None
    message: str | None = Field(
        description="the last outcome in plain words, for every status (queued, created, failed and why)"
    )
    last_error: str | None = Field(description="the last failure in plain words; null once one succeeded")
    attempts: int
    last_synced_at: datetime | None
    updated_at: datetime
    correlation_keys: list[CorrelationOut]


class TransferList(BaseModel):
    items: list[TransferOut]


class EligiblePartner(BaseModel):
    organization_id: int
    connection_id: int
    name: str
    operations: list[Operation]
    transfer: TransferOut | None


class EligiblePartnerList(BaseModel):
    items: list[EligiblePartner]
