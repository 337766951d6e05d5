"""Stored replies, so a retried request (same idempotency key) gets the answer it got the first time."""
from __future__ import annotations

from sqlalchemy import update

from .ledger import find_operation
from .models import Operation


def recall_reply(uow, key: str) -> str | None:
    op = find_operation(uow, key)
    return op.reply if op is not None else None


def remember_reply(uow, key: str, text: str) -> None:
    """Attach the reply to the request's operation (created on the spot for requests that charged nothing)."""
    updated = uow.session.execute(update(Operation).where(Operation.key == key).values(reply=text)).rowcount
    if not updated:
        from .ledger import open_operation

        op = open_operation(uow, key, "reply")
        if op is not None:
            op.reply = text
    uow.commit()
