"""the fraud guard: inbound rings from abroad (wangiri) and lines flagged by a fraud rule

Revision ID: 0005_fraud
Revises: 0004_card_redemption
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_fraud'
down_revision = '0004_card_redemption'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_ring',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('caller', sa.String(length=20), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('ring_seconds', sa.Integer(), nullable=False),
    sa.Column('rang_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('inbound_ring', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_ring_caller_time', ['caller', 'rang_at'], unique=False)

    op.create_table('fraud_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('rule', sa.String(length=30), nullable=False),
    sa.Column('amount_units', sa.BigInteger(), nullable=False),
    sa.Column('usual_units', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscriber_id', 'day', 'rule', name='uq_fraud_flag_line_day_rule')
    )


def downgrade() -> None:
    op.drop_table('fraud_flag')
    with op.batch_alter_table('inbound_ring', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_ring_caller_time')
    op.drop_table('inbound_ring')
