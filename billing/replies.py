"""Stored replies, so a retried request (same idempotency key) gets the answer it got the first time."""
from __future__ import annotations

from sqlalchemy import bindparam, select, update

from .ledger import open_operation
from .models import Operation


_TABLE = Operation.__table__
_STORE = update(_TABLE).where(_TABLE.c.key == bindparam("op_key")).values(reply=bindparam("op_reply"))
_RECALL = select(_TABLE.c.reply).where(_TABLE.c.key == bindparam("op_key"))


def recall_reply(uow, key: str) -> str | None:
    return uow.connection().execute(_RECALL, {"op_key": key}).scalar()


def remember_reply(uow, key: str, text: str) -> None:
    """Attach the reply to the request's operation (claimed on the spot for requests that charged nothing)."""
    stored = uow.connection().execute(_STORE, {"op_key": key, "op_reply": text}).rowcount
    if not stored:
        open_operation(uow, key, "reply")
        uow.connection().execute(_STORE, {"op_key": key, "op_reply": text})
    uow.commit()
