"""registration extension requests; customers' web domain and partner proposals

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registration_extensions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('requested_expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('previous_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_registration_extensions_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_registration_extensions_requested_by_users')),
    sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_registration_extensions_decided_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registration_extensions'))
    )
    op.create_index('ix_registration_extensions_lead_id_id', 'registration_extensions', ['lead_id', 'id'], unique=False)
    # at most one open request per registration (the second of two racing requests fails)
    op.create_index(
        'uq_registration_extensions_one_pending', 'registration_extensions', ['lead_id'], unique=True,
        sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"),
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('domain', sa.String(length=253), nullable=True))
        batch_op.add_column(sa.Column('proposed_by_organization_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('proposed_by', sa.Integer(), nullable=True))
        batch_op.create_index('ix_customers_domain', ['domain'], unique=False)
        batch_op.create_index('ix_customers_proposed_by_organization_id', ['proposed_by_organization_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_customers_proposed_by_organization_id_organizations'), 'organizations', ['proposed_by_organization_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_customers_proposed_by_users'), 'users', ['proposed_by'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_customers_proposed_by_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_customers_proposed_by_organization_id_organizations'), type_='foreignkey')
        batch_op.drop_index('ix_customers_proposed_by_organization_id')
        batch_op.drop_index('ix_customers_domain')
        batch_op.drop_column('proposed_by')
        batch_op.drop_column('proposed_by_organization_id')
        batch_op.drop_column('domain')
    op.drop_index('uq_registration_extensions_one_pending', table_name='registration_extensions')
    op.drop_index('ix_registration_extensions_lead_id_id', table_name='registration_extensions')
    op.drop_table('registration_extensions')
