"""Stored replies, so a retried request (same idempotency key) gets the answer it got the first time."""
from __future__ import annotations

from sqlalchemy import update

from .ledger import find_operation, open_operation
from .models import Operation


def recall_reply(uow, key: str) -> str | None:
    op = find_operation(uow, key)
    return op.reply if op is not None else None


def remember_reply(uow, key: str, text: str) -> None:
    """Attach the reply to the request's operation (claimed on the spot for requests that charged nothing)."""
    open_operation(uow, key, "reply")
    uow.session.execute(update(Operation).where(Operation.key == key).values(reply=text))
    uow.commit()
