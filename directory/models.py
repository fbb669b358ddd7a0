"""Reference data the domain needs: organizations, partner programs and memberships, users and their
API keys, customers (sales accounts) and the product catalog."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from common.clock import utcnow
from common.database import Base, UtcDateTime
from directory.enums import CustomerSize, OrganizationKind, PartnerType, ProductLevel


class Versioned:
    """Columns every editable record has: an optimistic-lock version (the ETag) and timestamps."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class Organization(Versioned, Base):
    __tablename__ = "organizations"
    # the reference fingerprint reads the latest change from this index (``territory.repository``)
    __table_args__ = (Index("ix_organizations_updated_at", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrganizationKind] = mapped_column(String(20))
    partner_type: Mapped[PartnerType | None] = mapped_column(String(30))
    can_register_leads: Mapped[bool] = mapped_column(Boolean, default=False)
    country: Mapped[str | None] = mapped_column(String(2))

    memberships: Mapped[list[ProgramMembership]] = relationship(
        back_populates="organization", cascade="all, delete-orphan", order_by="ProgramMembership.id"
    )


class PartnerProgram(Versioned, Base):
    __tablename__ = "partner_programs"
    # the reference fingerprint reads the latest change from this index (``territory.repository``)
    __table_args__ = (Index("ix_partner_programs_updated_at", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    allows_registration: Mapped[bool] = mapped_column(Boolean, default=True)


class ProgramMembership(Base):
    __tablename__ = "program_memberships"
    __table_args__ = (UniqueConstraint("organization_id", "program_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("partner_programs.id"))
    tier: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)

    organization: Mapped[Organization] = relationship(back_populates="memberships")
    program: Mapped[PartnerProgram] = relationship(lazy="joined")


class User(Versioned, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    organization: Mapped[Organization] = relationship(lazy="joined")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}

    user: Mapped[User] = relationship(lazy="joined")


class Customer(Versioned, Base):
    __tablename__ = "customers"
    # the reference fingerprint reads the latest change from this index (``territory.repository``)
    __table_args__ = (Index("ix_customers_updated_at", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    country: Mapped[str] = mapped_column(String(2))
    # ISO 3166-2 subdivision (any level, e.g. FR-ARA or FR-69) and postal code, when known: the lead's
    # geography is the deepest of postal code, subdivision and country that the territory model knows.
    subdivision: Mapped[str | None] = mapped_column(String(16))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    region: Mapped[str | None] = mapped_column(String(40))
    industry: Mapped[str | None] = mapped_column(String(80))
    size: Mapped[CustomerSize | None] = mapped_column(String(20))
    # The web domain partners search by (``example.com``).
    domain: Mapped[str | None] = mapped_column(String(253), index=True)
    # A customer a partner proposed: visible to that organization and the brand owner only, until an admin
    # takes it into the customer master (clears the organization).
    proposed_by_organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id"), index=True
    )
    proposed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Product(Versioned, Base):
    __tablename__ = "products"
    # the reference fingerprint reads the latest change from this index (``territory.repository``)
    __table_args__ = (Index("ix_products_updated_at", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[ProductLevel] = mapped_column(String(20))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), index=True)
