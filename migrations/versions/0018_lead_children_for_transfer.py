"""leads hold what a transfer kept as a lead carries: several contacts, activities, revenue amounts;
an opportunity's contacts and activities name the lead ones they were carried over from

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 09:11:43.023803
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_CHILD_KINDS = ('contacts', 'revenue_lines', 'notes', 'activities')
_ON_LEADS = "SELECT id FROM opportunity_transfers WHERE opportunity_id IS NULL AND lead_id IS NOT NULL"


def upgrade() -> None:
    op.create_table('lead_activities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_lead_activities_actor_user_id_users')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_activities_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_activities'))
    )
    with op.batch_alter_table('lead_activities', schema=None) as batch_op:
        batch_op.create_index('ix_lead_activities_lead_id_id', ['lead_id', 'id'], unique=False)

    op.create_table('lead_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('role', sa.String(length=100), nullable=True),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_contacts_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_contacts'))
    )
    with op.batch_alter_table('lead_contacts', schema=None) as batch_op:
        batch_op.create_index('ix_lead_contacts_lead_id_id', ['lead_id', 'id'], unique=False)

    with op.batch_alter_table('lead_products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount', sa.Numeric(precision=17, scale=2), nullable=True))
        batch_op.add_column(sa.Column('currency', sa.String(length=3), nullable=True))

    with op.batch_alter_table('opportunity_activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_activity_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_opportunity_activities_lead_activity_id_lead_activities'), 'lead_activities', ['lead_activity_id'], ['id'])

    with op.batch_alter_table('opportunity_contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_contact_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_opportunity_contacts_lead_contact_id_lead_contacts'), 'lead_contacts', ['lead_contact_id'], ['id'])

    # the child keys of a transfer kept as a lead name the lead's records: their own kinds (lead_notes...),
    # apart from the ids of opportunities' children
    op.execute(
        "UPDATE transfer_correlation_keys SET kind = 'lead_' || kind "
        f"WHERE kind IN {_CHILD_KINDS} AND transfer_id IN ({_ON_LEADS})"
    )



def downgrade() -> None:
    op.execute(
        "UPDATE transfer_correlation_keys SET kind = substr(kind, 6) "
        f"WHERE kind IN {tuple('lead_' + k for k in ('contacts', 'revenue_lines', 'notes', 'activities'))}"
    )
    with op.batch_alter_table('opportunity_contacts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_opportunity_contacts_lead_contact_id_lead_contacts'), type_='foreignkey')
        batch_op.drop_column('lead_contact_id')

    with op.batch_alter_table('opportunity_activities', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_opportunity_activities_lead_activity_id_lead_activities'), type_='foreignkey')
        batch_op.drop_column('lead_activity_id')

    with op.batch_alter_table('lead_products', schema=None) as batch_op:
        batch_op.drop_column('currency')
        batch_op.drop_column('amount')

    with op.batch_alter_table('lead_contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_contacts_lead_id_id')

    op.drop_table('lead_contacts')
    with op.batch_alter_table('lead_activities', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_activities_lead_id_id')

    op.drop_table('lead_activities')
