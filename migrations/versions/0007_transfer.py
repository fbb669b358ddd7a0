"""transfer: partner CRM connections, transfer status, correlation keys, inbound message ids

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 13:26:40.186942
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('partner_crm_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('base_url', sa.String(length=2048), nullable=False),
    sa.Column('operations', sa.JSON(), nullable=False),
    sa.Column('signing_secret_encrypted', sa.Text(), nullable=False),
    sa.Column('signing_secret_last4', sa.String(length=4), nullable=False),
    sa.Column('inbound_secret_encrypted', sa.Text(), nullable=False),
    sa.Column('inbound_secret_last4', sa.String(length=4), nullable=False),
    sa.Column('timeout_seconds', sa.Float(), nullable=False),
    sa.Column('profile_source', sa.Text(), nullable=False),
    sa.Column('profile_name', sa.String(length=100), nullable=False),
    sa.Column('inbound_profile_source', sa.Text(), nullable=True),
    sa.Column('inbound_creates', sa.String(length=20), nullable=False),
    sa.Column('transfer_on_approval', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_partner_crm_connections_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_crm_connections')),
    sa.UniqueConstraint('key', name=op.f('uq_partner_crm_connections_key')),
    sa.UniqueConstraint('organization_id', name=op.f('uq_partner_crm_connections_organization_id'))
    )
    op.create_table('transfer_inbound_message_ids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('msg_id', sa.String(length=256), nullable=False),
    sa.Column('signed_at', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['partner_crm_connections.id'], name=op.f('fk_transfer_inbound_message_ids_connection_id_partner_crm_connections')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer_inbound_message_ids')),
    sa.UniqueConstraint('connection_id', 'msg_id', name=op.f('uq_transfer_inbound_message_ids_connection_id'))
    )
    op.create_table('opportunity_transfers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=True),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('remote_id', sa.String(length=200), nullable=True),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('last_operation', sa.String(length=20), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['partner_crm_connections.id'], name=op.f('fk_opportunity_transfers_connection_id_partner_crm_connections')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_opportunity_transfers_lead_id_leads')),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_opportunity_transfers_opportunity_id_opportunities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunity_transfers')),
    sa.UniqueConstraint('connection_id', 'lead_id', name='uq_opportunity_transfers_lead'),
    sa.UniqueConstraint('connection_id', 'opportunity_id', name='uq_opportunity_transfers_opportunity'),
    sa.UniqueConstraint('connection_id', 'remote_id', name='uq_opportunity_transfers_remote')
    )
    with op.batch_alter_table('opportunity_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_opportunity_transfers_opportunity_id', ['opportunity_id'], unique=False)

    op.create_table('transfer_correlation_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('transfer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('local_id', sa.Integer(), nullable=False),
    sa.Column('remote_id', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['partner_crm_connections.id'], name=op.f('fk_transfer_correlation_keys_connection_id_partner_crm_connections')),
    sa.ForeignKeyConstraint(['transfer_id'], ['opportunity_transfers.id'], name=op.f('fk_transfer_correlation_keys_transfer_id_opportunity_transfers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer_correlation_keys')),
    sa.UniqueConstraint('connection_id', 'kind', 'local_id', name='uq_transfer_correlation_keys_local'),
    sa.UniqueConstraint('connection_id', 'kind', 'remote_id', name='uq_transfer_correlation_keys_remote')
    )
    with op.batch_alter_table('transfer_correlation_keys', schema=None) as batch_op:
        batch_op.create_index('ix_transfer_correlation_keys_transfer_id', ['transfer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transfer_correlation_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_transfer_correlation_keys_transfer_id')

    op.drop_table('transfer_correlation_keys')
    with op.batch_alter_table('opportunity_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_opportunity_transfers_opportunity_id')

    op.drop_table('opportunity_transfers')
    op.drop_table('transfer_inbound_message_ids')
    op.drop_table('partner_crm_connections')
