"""territory models, rulesets, decisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:49:38.806401
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "rulesets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("ast", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rulesets")),
        sa.UniqueConstraint("kind", "version_hash", name=op.f("uq_rulesets_kind")),
    )
    with op.batch_alter_table("rulesets", schema=None) as batch_op:
        batch_op.create_index(
            "uq_rulesets_one_active_per_kind",
            ["kind"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "territory_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("cloned_from_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cloned_from_id"],
            ["territory_models.id"],
            name=op.f("fk_territory_models_cloned_from_id_territory_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_territory_models")),
    )
    with op.batch_alter_table("territory_models", schema=None) as batch_op:
        batch_op.create_index(
            "uq_territory_models_one_active",
            ["status"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject_type", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("territory_model_id", sa.Integer(), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("trace", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name=op.f("fk_decisions_organization_id_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["territory_model_id"],
            ["territory_models.id"],
            name=op.f("fk_decisions_territory_model_id_territory_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "territories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("parent_key", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("partner_key", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["territory_models.id"],
            name=op.f("fk_territories_model_id_territory_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_territories")),
        sa.UniqueConstraint("model_id", "key", name=op.f("uq_territories_model_id")),
    )
    with op.batch_alter_table("territories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_territories_model_id"), ["model_id"], unique=False)

    op.create_table(
        "territory_coverage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("dimension", sa.String(length=20), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["territory_id"],
            ["territories.id"],
            name=op.f("fk_territory_coverage_territory_id_territories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_territory_coverage")),
        sa.UniqueConstraint(
            "territory_id", "dimension", "member", name=op.f("uq_territory_coverage_territory_id")
        ),
    )
    with op.batch_alter_table("territory_coverage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_territory_coverage_territory_id"), ["territory_id"], unique=False
        )

    op.create_table(
        "territory_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["territory_id"],
            ["territories.id"],
            name=op.f("fk_territory_members_territory_id_territories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_territory_members")),
        sa.UniqueConstraint(
            "territory_id", "user_key", "role", name=op.f("uq_territory_members_territory_id")
        ),
    )
    with op.batch_alter_table("territory_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_territory_members_territory_id"), ["territory_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("territory_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_territory_members_territory_id"))

    op.drop_table("territory_members")
    with op.batch_alter_table("territory_coverage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_territory_coverage_territory_id"))

    op.drop_table("territory_coverage")
    with op.batch_alter_table("territories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_territories_model_id"))

    op.drop_table("territories")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_subject_id"))

    op.drop_table("decisions")
    with op.batch_alter_table("territory_models", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_territory_models_one_active",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.drop_table("territory_models")
    with op.batch_alter_table("rulesets", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_rulesets_one_active_per_kind",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.drop_table("rulesets")
