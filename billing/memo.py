"""Answers kept with their request, so a retry (same idempotency key) gets the answer it got the
first time, word for word and with the same delivery flags, and changes nothing twice.

An answer is a small JSON object the channel defines (its text, a flash flag, ...); billing only
stores it on the request's operation row, in the transaction of the work it reports. It is written
when that transaction commits, with the other answers of the batch in one statement
(`UnitOfWork.hold`); until then `recall` finds it among the held ones.
"""
from __future__ import annotations

import json
from datetime import datetime

from .driver_sql import DriverStatement, RowsStatement
from .lines import lock_with_reply
from .models import Operation

# A request that charged nothing has no operation yet: its answer claims one (kind "reply"). An
# answer kept already is never replaced: a twin answered on another connection keeps the first.
# SQLite: a batch's answers as one statement over their rows (`RowsStatement`).
_KEEP_ROWS = RowsStatement(
    "INSERT INTO operation (key, kind, subscriber_id, created_at, reply) "
    "SELECT op_key, 'reply', NULL, created_at, op_reply FROM {rows} WHERE true "
    "ON CONFLICT (key) DO UPDATE SET reply = excluded.reply WHERE operation.reply IS NULL",
    ("op_key", "created_at", "op_reply"), binds={"created_at": Operation.__table__.c.created_at.type})
# PostgreSQL: the same, given as one JSON text made in C rather than arrays the driver builds an
# element at a time (psycopg's executemany runs pipeline mode, which cost more of a serving
# process's CPU than the statements themselves).
_KEEP_ALL = DriverStatement(
    "INSERT INTO operation (key, kind, subscriber_id, created_at, reply) "
    "SELECT op_key, 'reply', NULL, created_at, op_reply FROM json_to_recordset(CAST(:answers AS json)) "
    "AS kept (op_key text, created_at timestamp, op_reply text) "
    "ON CONFLICT (key) DO UPDATE SET reply = excluded.reply WHERE operation.reply IS NULL")
_RECALL = DriverStatement("SELECT reply FROM operation WHERE key = :op_key")


def recall(uow, key: str, line: str | None = None) -> dict | None:
    """The answer kept for `key`. `line`: the number of the line the request will charge, locked in
    the same statement (its next read of the line costs no round trip)."""
    for held in reversed(uow.held(_write)):
        if held["op_key"] == key:
            return json.loads(held["op_reply"])
    found = False
    if line is not None:
        found, stored = lock_with_reply(uow, line, key)
    if not found:
        stored = _RECALL.scalar(uow, {"op_key": key})
    if stored is None:
        return None
    try:
        return json.loads(stored)
    except ValueError:  # kept before answers were objects: the bare text
        return {"text": stored}


def remember(uow, key: str, answer: dict) -> None:
    """Keep the answer with the request's operation when the caller's transaction commits."""
    uow.hold(_write, {"op_key": key, "op_reply": json.dumps(answer, ensure_ascii=False, sort_keys=True),
                      "created_at": uow.clock.now()})


def _write(uow, answers: list[dict]) -> None:
    first: dict[str, dict] = {}
    for answer in answers:  # one row per key (PostgreSQL: a statement may not update a row twice)
        first.setdefault(answer["op_key"], answer)
    kept = list(first.values())
    if uow.driver().dialect.name != "postgresql":
        _KEEP_ROWS.run(uow, kept)
        return
    _KEEP_ALL.run(uow, {"answers": json.dumps(kept, default=datetime.isoformat)})
