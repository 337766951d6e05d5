"""sign-in by SMS code: challenges, per-hour quotas, API tokens and page sessions

Revision ID: 0006_signin
Revises: 0005_fraud
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_signin'
down_revision = '0005_fraud'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signin_challenge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=43), nullable=False),
    sa.Column('msisdn', sa.String(length=16), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('wrong_tries', sa.Integer(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    op.create_index('ix_signin_challenge_number_time', 'signin_challenge', ['msisdn', 'created_at'])
    op.create_table('signin_quota',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=120), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope')
    )
    op.create_index('ix_signin_quota_window', 'signin_quota', ['window_start'])
    op.create_table('web_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=4), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    op.create_index('ix_web_session_line', 'web_session', ['subscriber_id'])


def downgrade() -> None:
    op.drop_index('ix_web_session_line', table_name='web_session')
    op.drop_table('web_session')
    op.drop_index('ix_signin_quota_window', table_name='signin_quota')
    op.drop_table('signin_quota')
    op.drop_index('ix_signin_challenge_number_time', table_name='signin_challenge')
    op.drop_table('signin_challenge')
