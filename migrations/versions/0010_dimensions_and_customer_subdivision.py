"""declared dimensions and imported dimension members per territory model; customers' subdivision and
postal code

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('territory_dimensions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['territory_models.id'], name=op.f('fk_territory_dimensions_model_id_territory_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_territory_dimensions')),
    sa.UniqueConstraint('model_id', 'name', name=op.f('uq_territory_dimensions_model_id'))
    )
    op.create_index(op.f('ix_territory_dimensions_model_id'), 'territory_dimensions', ['model_id'], unique=False)
    op.create_table('dimension_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('dimension', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('parent_key', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['territory_models.id'], name=op.f('fk_dimension_members_model_id_territory_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dimension_members')),
    sa.UniqueConstraint('model_id', 'dimension', 'key', name=op.f('uq_dimension_members_model_id'))
    )
    op.create_index(op.f('ix_dimension_members_model_id'), 'dimension_members', ['model_id'], unique=False)
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subdivision', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('postal_code', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('postal_code')
        batch_op.drop_column('subdivision')
    op.drop_index(op.f('ix_dimension_members_model_id'), table_name='dimension_members')
    op.drop_table('dimension_members')
    op.drop_index(op.f('ix_territory_dimensions_model_id'), table_name='territory_dimensions')
    op.drop_table('territory_dimensions')
