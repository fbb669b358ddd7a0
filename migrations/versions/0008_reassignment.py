"""reassignment runs, items, chunks and assignment locks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assignment_locks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_type', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('locked_by', sa.Integer(), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['locked_by'], ['users.id'], name=op.f('fk_assignment_locks_locked_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment_locks')),
    sa.UniqueConstraint('subject_type', 'subject_id', name=op.f('uq_assignment_locks_subject_type'))
    )
    op.create_table('reassignment_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('territory_model_id', sa.Integer(), nullable=True),
    sa.Column('base_model_id', sa.Integer(), nullable=True),
    sa.Column('ruleset_ids', sa.JSON(), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('reverts_run_id', sa.Integer(), nullable=True),
    sa.Column('incremental', sa.Boolean(), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('total_leads', sa.Integer(), nullable=False),
    sa.Column('evaluated', sa.Integer(), nullable=False),
    sa.Column('moved', sa.Integer(), nullable=False),
    sa.Column('kept', sa.Integer(), nullable=False),
    sa.Column('applied', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('planned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('apply_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['base_model_id'], ['territory_models.id'], name=op.f('fk_reassignment_runs_base_model_id_territory_models')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_reassignment_runs_created_by_users')),
    sa.ForeignKeyConstraint(['reverts_run_id'], ['reassignment_runs.id'], name=op.f('fk_reassignment_runs_reverts_run_id_reassignment_runs')),
    sa.ForeignKeyConstraint(['territory_model_id'], ['territory_models.id'], name=op.f('fk_reassignment_runs_territory_model_id_territory_models')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reassignment_runs'))
    )
    with op.batch_alter_table('reassignment_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reassignment_runs_status'), ['status'], unique=False)

    op.create_table('reassignment_chunks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=10), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('first_id', sa.Integer(), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['reassignment_runs.id'], name=op.f('fk_reassignment_chunks_run_id_reassignment_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reassignment_chunks')),
    sa.UniqueConstraint('run_id', 'phase', 'number', name=op.f('uq_reassignment_chunks_run_id'))
    )
    op.create_table('reassignment_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('lead_version', sa.Integer(), nullable=False),
    sa.Column('lead_status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('territory_before', sa.String(length=64), nullable=True),
    sa.Column('territory_after', sa.String(length=64), nullable=True),
    sa.Column('cam_before', sa.String(length=64), nullable=True),
    sa.Column('cam_after', sa.String(length=64), nullable=True),
    sa.Column('before', sa.JSON(), nullable=False),
    sa.Column('after', sa.JSON(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=True),
    sa.Column('facts', sa.JSON(), nullable=True),
    sa.Column('result_json', sa.JSON(), nullable=True),
    sa.Column('decision_id', sa.Integer(), nullable=True),
    sa.Column('result', sa.String(length=20), nullable=True),
    sa.Column('result_reason', sa.Text(), nullable=True),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_reassignment_items_lead_id_leads'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['reassignment_runs.id'], name=op.f('fk_reassignment_items_run_id_reassignment_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reassignment_items')),
    sa.UniqueConstraint('run_id', 'lead_id', name=op.f('uq_reassignment_items_run_id'))
    )
    with op.batch_alter_table('reassignment_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reassignment_items_lead_id'), ['lead_id'], unique=False)
        batch_op.create_index('ix_reassignment_items_run_id_id', ['run_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reassignment_items', schema=None) as batch_op:
        batch_op.drop_index('ix_reassignment_items_run_id_id')
        batch_op.drop_index(batch_op.f('ix_reassignment_items_lead_id'))

    op.drop_table('reassignment_items')
    op.drop_table('reassignment_chunks')
    with op.batch_alter_table('reassignment_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reassignment_runs_status'))

    op.drop_table('reassignment_runs')
    op.drop_table('assignment_locks')
