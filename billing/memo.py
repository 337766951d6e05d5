"""Answers kept with their request, so a retry (same idempotency key) gets the answer it got the
first time, word for word and with the same delivery flags, and changes nothing twice.

An answer is a small JSON object the channel defines (its text, a flash flag, ...); billing only
stores it on the request's operation row, in the transaction of the work it reports.
"""
from __future__ import annotations

import json

from sqlalchemy import bindparam, select, update

from .ledger import open_operation
from .models import Operation

_TABLE = Operation.__table__
_STORE = update(_TABLE).where(_TABLE.c.key == bindparam("op_key")).values(reply=bindparam("op_reply"))
_RECALL = select(_TABLE.c.reply).where(_TABLE.c.key == bindparam("op_key"))


def recall(uow, key: str) -> dict | None:
    stored = uow.connection().execute(_RECALL, {"op_key": key}).scalar()
    if stored is None:
        return None
    try:
        return json.loads(stored)
    except ValueError:  # kept before answers were objects: the bare text
        return {"text": stored}


def remember(uow, key: str, answer: dict) -> None:
    """Attach the answer to the request's operation (claimed here for requests that charged nothing).
    Committed with the caller's transaction."""
    params = {"op_key": key, "op_reply": json.dumps(answer, ensure_ascii=False, sort_keys=True)}
    if not uow.connection().execute(_STORE, params).rowcount:
        open_operation(uow, key, "reply")
        uow.connection().execute(_STORE, params)
