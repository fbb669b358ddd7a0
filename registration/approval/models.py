"""Tables of approval: a submission's approval rounds with their steps and approvers, and the tasks an
approver's request for information sets the submitter."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.clock import utcnow
from common.database import Base, UtcDateTime


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
