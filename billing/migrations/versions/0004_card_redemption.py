"""scratch cards redeemed by PIN: a keyed PIN digest per card, the redeeming operation, wrong PINs per line

Revision ID: 0004_card_redemption
Revises: 0003_outbox_claims
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_card_redemption'
down_revision = '0003_outbox_claims'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cards imported from now on carry only the keyed PIN digest (pin_lookup); the old serial:PIN
    # hash stays for the cards imported before, which are redeemed with their serial.
    with op.batch_alter_table('scratch_card', schema=None) as batch_op:
        batch_op.alter_column('pin_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column('pin_lookup', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('operation_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_scratch_card_pin_lookup', ['pin_lookup'], unique=True)
        batch_op.create_foreign_key('fk_scratch_card_operation', 'operation', ['operation_id'], ['id'])

    op.create_table('card_pin_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('card_pin_failure', schema=None) as batch_op:
        batch_op.create_index('ix_card_pin_failure_line_time', ['subscriber_id', 'created_at'], unique=False)


def downgrade() -> None:
    conn = op.get_bind()
    pin_only = conn.execute(sa.text("SELECT COUNT(*) FROM scratch_card WHERE pin_hash IS NULL")).scalar()
    if pin_only:
        # 0003 finds a card by serial:PIN hash only; these cards have none and would be lost.
        raise RuntimeError(f"cannot downgrade below 0004_card_redemption: {pin_only} scratch card(s) "
                           "were imported with a PIN digest only and 0003 could never redeem them")
    with op.batch_alter_table('card_pin_failure', schema=None) as batch_op:
        batch_op.drop_index('ix_card_pin_failure_line_time')
    op.drop_table('card_pin_failure')

    with op.batch_alter_table('scratch_card', schema=None) as batch_op:
        batch_op.drop_constraint('fk_scratch_card_operation', type_='foreignkey')
        batch_op.drop_index('ix_scratch_card_pin_lookup')
        batch_op.drop_column('operation_id')
        batch_op.drop_column('pin_lookup')
        batch_op.alter_column('pin_hash', existing_type=sa.String(length=64), nullable=False)
