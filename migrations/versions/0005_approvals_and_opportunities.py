"""approval rounds, steps and approvers; lead tasks; opportunities with revenue lines, contacts, notes,
activities and sales team; the lead status (open, converted)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:04:18.009018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('approval_rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('current_step_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_by', sa.Integer(), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['decisions.id'], name=op.f('fk_approval_rounds_decision_id_decisions')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_approval_rounds_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['started_by'], ['users.id'], name=op.f('fk_approval_rounds_started_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_rounds')),
    sa.UniqueConstraint('lead_id', 'number', name=op.f('uq_approval_rounds_lead_id'))
    )
    with op.batch_alter_table('approval_rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_rounds_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index('ix_approval_rounds_status_id', ['status', 'id'], unique=False)

    op.create_table('opportunities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=24), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('registration_number', sa.String(length=20), nullable=True),
    sa.Column('registration_type', sa.String(length=20), nullable=True),
    sa.Column('registration_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('program_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('owner_user_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=17, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('expected_close_date', sa.Date(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.Integer(), nullable=True),
    sa.Column('close_comment', sa.Text(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['closed_by'], ['users.id'], name=op.f('fk_opportunities_closed_by_users')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_opportunities_created_by_users')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_opportunities_customer_id_customers')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_opportunities_lead_id_leads')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_opportunities_organization_id_organizations')),
    sa.ForeignKeyConstraint(['owner_user_id'], ['users.id'], name=op.f('fk_opportunities_owner_user_id_users')),
    sa.ForeignKeyConstraint(['program_id'], ['partner_programs.id'], name=op.f('fk_opportunities_program_id_partner_programs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunities')),
    sa.UniqueConstraint('lead_id', name=op.f('uq_opportunities_lead_id')),
    sa.UniqueConstraint('number', name=op.f('uq_opportunities_number'))
    )
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunities_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_opportunities_organization_id_id', ['organization_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_opportunities_status'), ['status'], unique=False)

    op.create_table('approval_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['approval_rounds.id'], name=op.f('fk_approval_steps_round_id_approval_rounds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_steps')),
    sa.UniqueConstraint('round_id', 'position', name=op.f('uq_approval_steps_round_id'))
    )
    op.create_table('lead_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assignee_user_id', sa.Integer(), nullable=True),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('answer_note_id', sa.Integer(), nullable=True),
    sa.Column('answered_by', sa.Integer(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['answer_note_id'], ['lead_notes.id'], name=op.f('fk_lead_tasks_answer_note_id_lead_notes')),
    sa.ForeignKeyConstraint(['answered_by'], ['users.id'], name=op.f('fk_lead_tasks_answered_by_users')),
    sa.ForeignKeyConstraint(['assignee_user_id'], ['users.id'], name=op.f('fk_lead_tasks_assignee_user_id_users')),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_tasks_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], name=op.f('fk_lead_tasks_requested_by_users')),
    sa.ForeignKeyConstraint(['round_id'], ['approval_rounds.id'], name=op.f('fk_lead_tasks_round_id_approval_rounds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_tasks'))
    )
    with op.batch_alter_table('lead_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_lead_tasks_lead_id_id', ['lead_id', 'id'], unique=False)

    op.create_table('opportunity_activities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_opportunity_activities_actor_user_id_users')),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_opportunity_activities_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunity_activities'))
    )
    with op.batch_alter_table('opportunity_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunity_activities_opportunity_id'), ['opportunity_id'], unique=False)

    op.create_table('opportunity_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('phone', sa.String(length=40), nullable=True),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_opportunity_contacts_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunity_contacts'))
    )
    with op.batch_alter_table('opportunity_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunity_contacts_opportunity_id'), ['opportunity_id'], unique=False)

    op.create_table('opportunity_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('lead_note_id', sa.Integer(), nullable=True),
    sa.Column('author_user_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('written_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_user_id'], ['users.id'], name=op.f('fk_opportunity_notes_author_user_id_users')),
    sa.ForeignKeyConstraint(['lead_note_id'], ['lead_notes.id'], name=op.f('fk_opportunity_notes_lead_note_id_lead_notes')),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_opportunity_notes_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunity_notes'))
    )
    with op.batch_alter_table('opportunity_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opportunity_notes_opportunity_id'), ['opportunity_id'], unique=False)

    op.create_table('opportunity_revenue_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=17, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_opportunity_revenue_lines_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_opportunity_revenue_lines_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunity_revenue_lines')),
    sa.UniqueConstraint('opportunity_id', 'product_id', name=op.f('uq_opportunity_revenue_lines_opportunity_id'))
    )
    op.create_table('opportunity_sales_team',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['opportunity_id'], ['opportunities.id'], name=op.f('fk_opportunity_sales_team_opportunity_id_opportunities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_opportunity_sales_team_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opportunity_sales_team')),
    sa.UniqueConstraint('opportunity_id', 'user_id', 'role', name=op.f('uq_opportunity_sales_team_opportunity_id'))
    )
    op.create_table('approval_step_approvers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('user_key', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['step_id'], ['approval_steps.id'], name=op.f('fk_approval_step_approvers_step_id_approval_steps'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_approval_step_approvers_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_step_approvers')),
    sa.UniqueConstraint('step_id', 'user_id', name=op.f('uq_approval_step_approvers_step_id'))
    )
    with op.batch_alter_table('approval_step_approvers', schema=None) as batch_op:
        batch_op.create_index('ix_approval_step_approvers_user_id_step_id', ['user_id', 'step_id'], unique=False)

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_status', sa.String(length=20), server_default='open', nullable=False))
        batch_op.create_index('ix_leads_status_expires_at', ['status', 'expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_status_expires_at')
        batch_op.drop_column('lead_status')

    with op.batch_alter_table('approval_step_approvers', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_step_approvers_user_id_step_id')

    op.drop_table('approval_step_approvers')
    op.drop_table('opportunity_sales_team')
    op.drop_table('opportunity_revenue_lines')
    with op.batch_alter_table('opportunity_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunity_notes_opportunity_id'))

    op.drop_table('opportunity_notes')
    with op.batch_alter_table('opportunity_contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunity_contacts_opportunity_id'))

    op.drop_table('opportunity_contacts')
    with op.batch_alter_table('opportunity_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunity_activities_opportunity_id'))

    op.drop_table('opportunity_activities')
    with op.batch_alter_table('lead_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_tasks_lead_id_id')

    op.drop_table('lead_tasks')
    op.drop_table('approval_steps')
    with op.batch_alter_table('opportunities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opportunities_status'))
        batch_op.drop_index('ix_opportunities_organization_id_id')
        batch_op.drop_index(batch_op.f('ix_opportunities_customer_id'))

    op.drop_table('opportunities')
    with op.batch_alter_table('approval_rounds', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_rounds_status_id')
        batch_op.drop_index(batch_op.f('ix_approval_rounds_lead_id'))

    op.drop_table('approval_rounds')
