"""Tables of opportunities: the deal an approved registration converts into, with its revenue lines,
contacts, notes, activities and sales team."""

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
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.clock import utcnow
from common.database import NEVER_REUSED_IDS, Base, UtcDateTime


class Opportunity(Base):
    """The deal an approved registration converted into; linked to its registration (lead id, number)
    and carrying the registration's expiry, after which the partner's team may no longer close it."""

    __tablename__ = "opportunities"
    __table_args__ = (Index("ix_opportunities_organization_id_id", "organization_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    # One opportunity per registration: the unique key is what makes a racing second approval fail.
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), unique=True)
    registration_number: Mapped[str | None] = mapped_column(String(20))
    registration_type: Mapped[str | None] = mapped_column(String(20))
    registration_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("partner_programs.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # The sales stage, in the seller's words (open/won/lost is ``status``); travels to partners' CRMs.
    stage: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), index=True)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(17, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    expected_close_date: Mapped[date | None] = mapped_column(Date)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    close_comment: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}

    revenue_lines: Mapped[list[OpportunityRevenueLine]] = relationship(
        cascade="all, delete-orphan", order_by="OpportunityRevenueLine.id", lazy="selectin"
    )
    contacts: Mapped[list[OpportunityContact]] = relationship(
        cascade="all, delete-orphan", order_by="OpportunityContact.id", lazy="selectin"
    )
    notes: Mapped[list[OpportunityNote]] = relationship(
        cascade="all, delete-orphan", order_by="OpportunityNote.id", lazy="selectin"
    )
    activities: Mapped[list[OpportunityActivity]] = relationship(
        cascade="all, delete-orphan", order_by="OpportunityActivity.id", lazy="selectin"
    )
    sales_team: Mapped[list[OpportunitySalesTeamMember]] = relationship(
        cascade="all, delete-orphan", order_by="OpportunitySalesTeamMember.id", lazy="selectin"
    )


class OpportunityRevenueLine(Base):
    """One product of the deal; the primary product's line carries the deal size."""

    __tablename__ = "opportunity_revenue_lines"
    __table_args__ = (UniqueConstraint("opportunity_id", "product_id"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(17, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OpportunityContact(Base):
    """One of the opportunity's contacts at the customer (several; at most one primary)."""

    __tablename__ = "opportunity_contacts"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    role: Mapped[str | None] = mapped_column(String(100))  # e.g. "decision maker", "IT lead"
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    # The lead contact it was carried over from (a lead with several contacts), like a note's lead_note_id.
    lead_contact_id: Mapped[int | None] = mapped_column(ForeignKey("lead_contacts.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OpportunityNote(Base):
    """A note of the opportunity; notes carried over from the lead keep their author, time and origin."""

    __tablename__ = "opportunity_notes"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), index=True
    )
    lead_note_id: Mapped[int | None] = mapped_column(ForeignKey("lead_notes.id"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    written_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OpportunityActivity(Base):
    """Something that happened on the deal (the approval, an information request and its answer...)."""

    __tablename__ = "opportunity_activities"
    __table_args__ = (NEVER_REUSED_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The lead activity it was carried over from when the lead converted.
    lead_activity_id: Mapped[int | None] = mapped_column(ForeignKey("lead_activities.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OpportunitySalesTeamMember(Base):
    """A resource on the opportunity's sales team: the owner CAM, the partner's resources."""

    __tablename__ = "opportunity_sales_team"
    __table_args__ = (UniqueConstraint("opportunity_id", "user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
