"""Offers of an unaccepted lead: the partner organizations an internal user or a campaign handed the
lead to. Each offered partner sees the lead and may accept it; once a partner accepts, the offers end
(the lead is that partner's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.clock import utcnow
from common.database import Base, UtcDateTime


class LeadOffer(Base):
    __tablename__ = "lead_offers"
    __table_args__ = (
        UniqueConstraint("lead_id", "organization_id"),
        Index("ix_lead_offers_organization_id_lead_id", "organization_id", "lead_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    offered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
