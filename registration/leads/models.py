"""Tables of lead registration: leads with their products, sales team, territory team and notes; the
registration-number counter; the idempotency keys of lead creation; approval rounds with their steps and
approvers; tasks for the submitter; and the opportunity an approved registration converts into (with its
revenue lines, contacts, notes, activities and sales team)."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.clock import utcnow
from common.database import Base, UtcDateTime


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
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


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
    __table_args__ = (Index("ix_lead_notes_lead_id_id", "lead_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class RegistrationCounter(Base):
    """One row per number series; incremented in the submitting transaction, so a number is never
    handed out twice (a rolled-back increment leaves a gap, which is allowed)."""

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


# --- approval rounds ----------------------------------------------------------------------------------


class ApprovalRound(Base):
    """One submission's approval: its steps come from the decision that routed it. A resubmission after
    a reject or withdraw starts the next round; earlier rounds stay as they ended."""

    __tablename__ = "approval_rounds"
    __table_args__ = (
        UniqueConstraint("lead_id", "number"),
        Index("ix_approval_rounds_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    status: Mapped[str] = mapped_column(String(20))
    # The step waiting for a decision (None once the round has ended).
    current_step_id: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    steps: Mapped[list[ApprovalStep]] = relationship(
        cascade="all, delete-orphan", order_by="ApprovalStep.position", lazy="selectin"
    )


class ApprovalStep(Base):
    """A step of a round: ``parallel`` (the first decision decides) or ``all`` (everyone approves)."""

    __tablename__ = "approval_steps"
    __table_args__ = (UniqueConstraint("round_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("approval_rounds.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    approvers: Mapped[list[ApprovalStepApprover]] = relationship(
        cascade="all, delete-orphan", order_by="ApprovalStepApprover.id", lazy="selectin"
    )


class ApprovalStepApprover(Base):
    """An approver of a step (resolved from the decision's user key) and what they decided."""

    __tablename__ = "approval_step_approvers"
    __table_args__ = (
        UniqueConstraint("step_id", "user_id"),
        Index("ix_approval_step_approvers_user_id_step_id", "user_id", "step_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("approval_steps.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    user_key: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str | None] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class LeadTask(Base):
    """Work for a person on a lead: an approver's request for information, answered by the submitter."""

    __tablename__ = "lead_tasks"
    __table_args__ = (Index("ix_lead_tasks_lead_id_id", "lead_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("approval_rounds.id"))
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    question: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answer: Mapped[str | None] = mapped_column(Text)
    answer_note_id: Mapped[int | None] = mapped_column(ForeignKey("lead_notes.id"))
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


# --- opportunities ------------------------------------------------------------------------------------


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
    __table_args__ = (UniqueConstraint("opportunity_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(17, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OpportunityContact(Base):
    __tablename__ = "opportunity_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OpportunityNote(Base):
    """A note of the opportunity; notes carried over from the lead keep their author, time and origin."""

    __tablename__ = "opportunity_notes"

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

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunities.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
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
