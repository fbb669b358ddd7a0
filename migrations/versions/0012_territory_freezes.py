"""territory freezes: territories of a model that batch reassignment leaves alone

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 06:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('territory_freezes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('territory_model_id', sa.Integer(), nullable=False),
    sa.Column('territory_key', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('frozen_by', sa.Integer(), nullable=True),
    sa.Column('frozen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['frozen_by'], ['users.id'], name=op.f('fk_territory_freezes_frozen_by_users')),
    sa.ForeignKeyConstraint(['territory_model_id'], ['territory_models.id'], name=op.f('fk_territory_freezes_territory_model_id_territory_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_territory_freezes')),
    sa.UniqueConstraint('territory_model_id', 'territory_key', name=op.f('uq_territory_freezes_territory_model_id'))
    )


def downgrade() -> None:
    op.drop_table('territory_freezes')
