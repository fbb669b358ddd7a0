"""lead offers: the partner organizations an unaccepted lead is offered to

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lead_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('offered_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_offers_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_lead_offers_organization_id_organizations')),
    sa.ForeignKeyConstraint(['offered_by'], ['users.id'], name=op.f('fk_lead_offers_offered_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_offers')),
    sa.UniqueConstraint('lead_id', 'organization_id', name=op.f('uq_lead_offers_lead_id'))
    )
    op.create_index('ix_lead_offers_organization_id_lead_id', 'lead_offers', ['organization_id', 'lead_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_lead_offers_organization_id_lead_id', table_name='lead_offers')
    op.drop_table('lead_offers')
