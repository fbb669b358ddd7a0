"""Tables of opportunity transfer: partner CRM connections, transfer status per opportunity and partner,
correlation keys (our id <-> their id, per record kind), and the inbound message ids seen (replay store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.database import Base, UtcDateTime


class PartnerCrmConnection(Base):
    """How we reach one partner organization's CRM, and how it reaches us."""

    __tablename__ = "partner_crm_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), unique=True)
    # Names the connection in the inbound path: /v1/partner-crm/{key}/...
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str] = mapped_column(String(2048))
    operations: Mapped[list[str]] = mapped_column(JSON)
    # Fernet tokens (PRM_SECRET_KEY); only the last four characters are ever shown.
    signing_secret_encrypted: Mapped[str] = mapped_column(Text)
    signing_secret_last4: Mapped[str] = mapped_column(String(4))
    inbound_secret_encrypted: Mapped[str] = mapped_column(Text)
    inbound_secret_last4: Mapped[str] = mapped_column(String(4))
    timeout_seconds: Mapped[float] = mapped_column(Float)
    # The partner's data model (what we send them, what their answers hold).
    profile_source: Mapped[str] = mapped_column(Text)
    profile_name: Mapped[str] = mapped_column(String(100))
    # The model the partner speaks to us in (None: our own names, the bundled brand_owner profile).
    inbound_profile_source: Mapped[str | None] = mapped_column(Text)
    inbound_creates: Mapped[str] = mapped_column(String(20))
    transfer_on_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    # Each change of a transferred opportunity queues its update to the partner (else: send-update by hand).
    send_updates_automatically: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}


class OpportunityTransfer(Base):
    """The transfer status of one opportunity (or inbound lead) with one partner, and its remote id."""

    __tablename__ = "opportunity_transfers"
    __table_args__ = (
        UniqueConstraint("connection_id", "opportunity_id", name="uq_opportunity_transfers_opportunity"),
        UniqueConstraint("connection_id", "lead_id", name="uq_opportunity_transfers_lead"),
        # The partner keeps a transfer as its lead or its opportunity: one id space per record type.
        UniqueConstraint("connection_id", "remote_type", "remote_id", name="uq_opportunity_transfers_remote"),
        Index("ix_opportunity_transfers_opportunity_id", "opportunity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("partner_crm_connections.id"))
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunities.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"))
    remote_id: Mapped[str | None] = mapped_column(String(200))
    # What the partner keeps the record as ("lead", "opportunity", or its profile's object name).
    remote_type: Mapped[str | None] = mapped_column(String(100))
    # Who transferred first: "outbound" (we sent it) or "inbound" (they sent it to us).
    origin: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    last_operation: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The last outcome in plain words, whatever the status ("created as opportunity 12 on ...").
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class CorrelationKey(Base):
    """Our id of a record <-> the partner's id of it, per connection and record kind."""

    __tablename__ = "transfer_correlation_keys"
    __table_args__ = (
        UniqueConstraint("connection_id", "kind", "local_id", name="uq_transfer_correlation_keys_local"),
        UniqueConstraint("connection_id", "kind", "remote_id", name="uq_transfer_correlation_keys_remote"),
        Index("ix_transfer_correlation_keys_transfer_id", "transfer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("partner_crm_connections.id"))
    transfer_id: Mapped[int] = mapped_column(ForeignKey("opportunity_transfers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # opportunity, lead, contacts, revenue_lines, notes, ...
    local_id: Mapped[int] = mapped_column(Integer)
    remote_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # A tombstone: the child was deleted on one side. The pair stays, so the partner's copy is deleted
    # too and never taken for a new record; documents carry it under ``deletions``.
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class InboundMessageId(Base):
    """A signed inbound request's ``webhook-id``, kept to refuse replays."""

    __tablename__ = "transfer_inbound_message_ids"
    __table_args__ = (UniqueConstraint("connection_id", "msg_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("partner_crm_connections.id"))
    msg_id: Mapped[str] = mapped_column(String(256))
    signed_at: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
