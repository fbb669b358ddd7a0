"""Stored territory models: a model (planning, active, archived) owns a tree of territories, each with
its coverage per dimension and its team. Exactly one model is active (a partial unique index)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.clock import utcnow
from common.database import Base, UtcDateTime


class ModelStatus(StrEnum):
    PLANNING = "planning"
    ACTIVE = "active"
    ARCHIVED = "archived"


class CoverageMode(StrEnum):
    INCLUDE = "include"
    EXCLUDE = "exclude"


class TerritoryModel(Base):
    __tablename__ = "territory_models"
    __table_args__ = (
        Index(
            "uq_territory_models_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[ModelStatus] = mapped_column(String(20), default=ModelStatus.PLANNING)
    cloned_from_id: Mapped[int | None] = mapped_column(ForeignKey("territory_models.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}

    territories: Mapped[list[Territory]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="Territory.key"
    )


class Territory(Base):
    __tablename__ = "territories"
    __table_args__ = (UniqueConstraint("model_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("territory_models.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    parent_key: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    partner_key: Mapped[str | None] = mapped_column(String(64))

    model: Mapped[TerritoryModel] = relationship(back_populates="territories")
    coverage: Mapped[list[TerritoryCoverage]] = relationship(
        cascade="all, delete-orphan", order_by="TerritoryCoverage.id", lazy="selectin"
    )
    members: Mapped[list[TerritoryMember]] = relationship(
        cascade="all, delete-orphan", order_by="TerritoryMember.id", lazy="selectin"
    )


class TerritoryCoverage(Base):
    __tablename__ = "territory_coverage"
    __table_args__ = (UniqueConstraint("territory_id", "dimension", "member"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    dimension: Mapped[str] = mapped_column(String(20))
    member: Mapped[str] = mapped_column(String(64))
    mode: Mapped[CoverageMode] = mapped_column(String(10))


class TerritoryMember(Base):
    __tablename__ = "territory_members"
    __table_args__ = (UniqueConstraint("territory_id", "user_key", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    user_key: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(40))


class TerritoryDimension(Base):
    """A dimension an admin declared on a model, beside the built-in ones; ``source`` names the lead fact
    that feeds it (a lead or customer field, e.g. ``customer_industry``) when the facts do not name the
    dimension itself."""

    __tablename__ = "territory_dimensions"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("territory_models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(200))


class DimensionMember(Base):
    """A member an admin added to a dimension of a model (a region, a postal-code area, an industry...),
    or a country moved to another region; versioned with the model like its territories."""

    __tablename__ = "dimension_members"
    __table_args__ = (UniqueConstraint("model_id", "dimension", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("territory_models.id", ondelete="CASCADE"), index=True)
    dimension: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(64))
    parent_key: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))


class StoredTreeOutline(Base):
    """The outline of a model's tree as of one model version and reference data (``territory.outline``,
    zlib-compressed JSON): what ``prm territories tree`` and the tree views read instead of rebuilding
    the model. One row per model, replaced when either changed."""

    __tablename__ = "territory_tree_outlines"

    model_id: Mapped[int] = mapped_column(ForeignKey("territory_models.id"), primary_key=True)
    model_version: Mapped[int] = mapped_column(Integer)
    # sha256 of the reference data fingerprint (customers, products, programs, partners)
    reference: Mapped[str] = mapped_column(String(64))
    format: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
