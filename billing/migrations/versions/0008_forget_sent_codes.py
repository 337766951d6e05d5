"""sign-in codes: blank the code of every sign-in SMS already sent (kept before sending blanked it)

Revision ID: 0008_forget_sent_codes
Revises: 0007_signin

Data only. Since this revision the acknowledgement of a sent sign-in SMS blanks its code
(billing/outbox.py FORGET_WHEN_SENT); rows sent before still hold theirs in plain text. Those codes
are used or expired, but the table must not keep them. Downgrade has nothing to restore.
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0008_forget_sent_codes'
down_revision = '0007_signin'
branch_labels = None
depends_on = None

_OUTBOX = sa.table('outbox_message', sa.column('id', sa.Integer), sa.column('template', sa.String),
                   sa.column('params', sa.Text), sa.column('sent_at', sa.DateTime))


def upgrade() -> None:
    connection = op.get_bind()
    sent = connection.execute(sa.select(_OUTBOX.c.id, _OUTBOX.c.params).where(
        _OUTBOX.c.template == 'signin-code', _OUTBOX.c.sent_at.is_not(None))).all()
    for row_id, params in sent:
        kept = json.loads(params or '{}')
        if kept.get('code'):
            kept['code'] = ''
            connection.execute(sa.update(_OUTBOX).where(_OUTBOX.c.id == row_id)
                               .values(params=json.dumps(kept, sort_keys=True, default=str)))


def downgrade() -> None:
    pass
