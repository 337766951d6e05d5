"""call sessions: the state of a voice call driven one request at a time (Twilio Voice webhooks)

Revision ID: 0006_call_sessions
Revises: 0005_fraud
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_call_sessions'
down_revision = '0005_fraud'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('call_session',
    sa.Column('call_id', sa.String(length=64), nullable=False),
    sa.Column('service', sa.String(length=20), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('turn', sa.Integer(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('call_id')
    )
    with op.batch_alter_table('call_session', schema=None) as batch_op:
        batch_op.create_index('ix_call_session_expires', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('call_session', schema=None) as batch_op:
        batch_op.drop_index('ix_call_session_expires')
    op.drop_table('call_session')
