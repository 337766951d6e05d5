"""internet packs and Nar/SOS credit (issue 5)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nar_debt_units', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('sos_debt_units', sa.BigInteger(), server_default='0', nullable=False))

    op.create_table('pack_subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('pack_code', sa.String(length=20), nullable=False),
    sa.Column('pack_group', sa.String(length=20), nullable=False),
    sa.Column('volume_mb', sa.Integer(), nullable=False),
    sa.Column('throttle_kbps', sa.Integer(), nullable=True),
    sa.Column('remaining_kb', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('auto_renew', sa.Boolean(), nullable=False),
    sa.Column('period_start', sa.DateTime(), nullable=False),
    sa.Column('period_end', sa.DateTime(), nullable=False),
    sa.Column('leftover_until', sa.DateTime(), nullable=True),
    sa.Column('retry_until', sa.DateTime(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('held_by_suspension', sa.Boolean(), nullable=False),
    sa.Column('renew_after_payment', sa.Boolean(), nullable=False),
    sa.Column('renewals', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pack_subscription', schema=None) as batch_op:
        batch_op.create_index('ix_pack_line_status', ['subscriber_id', 'status'], unique=False)
        batch_op.create_index('ix_pack_due', ['status', 'period_end'], unique=False)

    op.create_table('credit_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.Integer(), nullable=False),
    sa.Column('debtor_id', sa.Integer(), nullable=False),
    sa.Column('beneficiary_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=3), nullable=False),
    sa.Column('principal_units', sa.BigInteger(), nullable=False),
    sa.Column('fee_units', sa.BigInteger(), nullable=False),
    sa.Column('deferred_request_fee_units', sa.BigInteger(), nullable=False),
    sa.Column('outstanding_units', sa.BigInteger(), nullable=False),
    sa.Column('granted_at', sa.DateTime(), nullable=False),
    sa.Column('repaid_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['operation_id'], ['operation.id'], ),
    sa.ForeignKeyConstraint(['debtor_id'], ['subscriber.id'], ),
    sa.ForeignKeyConstraint(['beneficiary_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('credit_grant', schema=None) as batch_op:
        batch_op.create_index('ix_credit_debtor_open', ['debtor_id', 'repaid_at'], unique=False)

    op.create_table('friend_credit_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('requester_id', sa.Integer(), nullable=False),
    sa.Column('friend_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['requester_id'], ['subscriber.id'], ),
    sa.ForeignKeyConstraint(['friend_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('friend_credit_request', schema=None) as batch_op:
        batch_op.create_index('ix_friend_request_open', ['friend_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('friend_credit_request', schema=None) as batch_op:
        batch_op.drop_index('ix_friend_request_open')
    op.drop_table('friend_credit_request')
    with op.batch_alter_table('credit_grant', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_debtor_open')
    op.drop_table('credit_grant')
    with op.batch_alter_table('pack_subscription', schema=None) as batch_op:
        batch_op.drop_index('ix_pack_due')
        batch_op.drop_index('ix_pack_line_status')
    op.drop_table('pack_subscription')
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.drop_column('sos_debt_units')
        batch_op.drop_column('nar_debt_units')
