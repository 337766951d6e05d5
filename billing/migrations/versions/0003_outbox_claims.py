"""outbox: claim -> send -> acknowledge, a public reference per message, delivery reports

Revision ID: 0003_outbox_claims
Revises: 0002
"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = '0003_outbox_claims'
down_revision = '0002'
branch_labels = None
depends_on = None


def _ref(key: str) -> str:
    # Frozen copy of billing.outbox.ref_of (a migration must not change when the code does).
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ref', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('delivery_status', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('delivery_at', sa.DateTime(), nullable=True))

    outbox = sa.table('outbox_message', sa.column('id', sa.Integer), sa.column('key', sa.String),
                      sa.column('ref', sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.key)).all()
    if rows:
        conn.execute(outbox.update().where(outbox.c.id == sa.bindparam('row_id')).values(ref=sa.bindparam('row_ref')),
                     [{'row_id': row_id, 'row_ref': _ref(key)} for row_id, key in rows])

    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_ref', ['ref'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_ref')
        batch_op.drop_column('delivery_at')
        batch_op.drop_column('delivery_status')
        batch_op.drop_column('claim_token')
        batch_op.drop_column('ref')
