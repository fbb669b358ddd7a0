"""Tables of lead registration: leads with their products, sales team, territory team and notes; the
contacts and activities of a lead that carries more than one contact (a transfer kept as a lead); the
registration-number counter; the idempotency keys of lead creation."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Select,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.clock import utcnow
from common.database import NEVER_REUSED_IDS, Base, UtcDateTime
from rules.models import DECISIONS_IN_FORCE


class Lead(Base):
    """A partner lead and its registration (status, number, expiry)."""

    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_organization_id_id", "organization_id", "id"),
        Index("ix_leads_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The partner organization that owns the lead (sees and edits it); None for an internal lead not yet
    # offered to a partner.
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    registration_type: Mapped[str | None] = mapped_column(String(20))
    partner_type: Mapped[str | None] = mapped_column(String(30))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("partner_programs.id"))
    primary_partner_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    deal_size: Mapped[Decimal | None] = mapped_column(Numeric(17, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    expected_close_date: Mapped[date | None] = mapped_column(Date)
    # The deal's sales stage and open/won/lost as a transfer kept as a lead carries them (None: a lead
    # registered here); the opportunity the lead converts into takes them over.
    stage: Mapped[str | None] = mapped_column(String(100))
    deal_status: Mapped[str | None] = mapped_column(String(20))
    sales_channel: Mapped[str] = mapped_column(String(20), default="partner")
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    registration_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    # The lead's own status (open, converted), beside the registration's ``status``.
    lead_status: Mapped[str] = mapped_column(String(20), default="open", server_default="open")
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The decision that routed the latest submission (its approval steps name the approvers).
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}

    products: Mapped[list[LeadProduct]] = relationship(
        cascade="all, delete-orphan", order_by="LeadProduct.id", lazy="selectin"
    )
    sales_team: Mapped[list[SalesTeamMember]] = relationship(
        cascade="all, delete-orphan", order_by="SalesTeamMember.id", lazy="selectin"
    )
    territory_team: Mapped[list[LeadTerritory]] = relationship(
        cascade="all, delete-orphan", order_by="LeadTerritory.id", lazy="selectin"
    )


class LeadProduct(Base):
    __tablename__ = "lead_products"
    __table_args__ = (
        UniqueConstraint("lead_id", "product_id"),
        Index(
            "uq_lead_products_one_primary",
            "lead_id",
            unique=True,
            sqlite_where=text("is_primary"),
            postgresql_where=text("is_primary"),
        ),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    # The line's own amount where one is known (a transfer kept as a lead carries its revenue lines'
    # amounts); None: the primary product's line takes the deal size when the lead converts.
    amount: Mapped[Decimal | None] = mapped_column(Numeric(17, 2))
    currency: Mapped[str | None] = mapped_column(String(3))


class SalesTeamMember(Base):
    """A resource on the lead's sales team, with its role and where it came from."""

    __tablename__ = "lead_sales_team"
    __table_args__ = (UniqueConstraint("lead_id", "user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(40))


class LeadTerritory(Base):
    """A territory on the lead's territory team (key within the territory model that assigned it)."""

    __tablename__ = "lead_territories"
    __table_args__ = (UniqueConstraint("lead_id", "territory_model_id", "territory_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    territory_key: Mapped[str] = mapped_column(String(64))
    territory_model_id: Mapped[int | None] = mapped_column(ForeignKey("territory_models.id"))


class LeadNote(Base):
    __tablename__ = "lead_notes"
    __table_args__ = (Index("ix_lead_notes_lead_id_id", "lead_id", "id"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class LeadContact(Base):
    """One of a lead's contacts at the customer when it has several (a transfer kept as a lead); the
    lead's own contact fields mirror the primary one. A lead registered through the API has none."""

    __tablename__ = "lead_contacts"
    __table_args__ = (Index("ix_lead_contacts_lead_id_id", "lead_id", "id"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    role: Mapped[str | None] = mapped_column(String(100))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class LeadActivity(Base):
    """Something that happened on a lead before it converted (a call, a meeting... as a transfer kept as
    a lead carries them); the opportunity takes them over."""

    __tablename__ = "lead_activities"
    __table_args__ = (Index("ix_lead_activities_lead_id_id", "lead_id", "id"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class RegistrationCounter(Base):
    """One row per number series, incremented in the submitting transaction, so a number is never
    handed out twice: SQLite's. On PostgreSQL the numbers come from the sequence ``registration_numbers``
    (owned by ``last_value``), which locks nothing: this row stayed locked by each submitting
    transaction until its commit, and every submit waited for the one before it. A number taken by a
    transaction that rolls back is not used again there (a gap, which is allowed)."""

    __tablename__ = "registration_counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyKey(Base):
    """A create request's ``Idempotency-Key``, per organization, with the reply it got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("organization_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


def _decisions_in_force() -> Select[int, int | None]:
    return select(Lead.id, Lead.decision_id)


DECISIONS_IN_FORCE["lead"] = _decisions_in_force
