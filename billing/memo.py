"""Answers kept with their request, so a retry (same idempotency key) gets the answer it got the
first time, word for word and with the same delivery flags, and changes nothing twice.

An answer is a small JSON object the channel defines (its text, a flash flag, ...); billing only
stores it on the request's operation row, in the transaction of the work it reports.
"""
from __future__ import annotations

import json

from .driver_sql import DriverStatement
from .ledger import open_operation

_STORE = DriverStatement("UPDATE operation SET reply = :op_reply WHERE key = :op_key")
_RECALL = DriverStatement("SELECT reply FROM operation WHERE key = :op_key")


def recall(uow, key: str) -> dict | None:
    stored = _RECALL.scalar(uow, {"op_key": key})
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
    if not _STORE.run(uow, params):
        open_operation(uow, key, "reply")
        _STORE.run(uow, params)
