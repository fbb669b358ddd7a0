"""territory tree outlines: the stored outline of each model's tree (what the tree views read)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 09:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'territory_tree_outlines',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('model_version', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=64), nullable=False),
        sa.Column('format', sa.Integer(), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['territory_models.id'], name=op.f('fk_territory_tree_outlines_model_id_territory_models')),
        sa.PrimaryKeyConstraint('model_id', name=op.f('pk_territory_tree_outlines')),
    )


def downgrade() -> None:
    op.drop_table('territory_tree_outlines')
