"""Call sessions: the state of a voice call whose gateway drives it one request at a time (a
Twilio Voice call, by webhook), kept between two requests in the `call_session` table.

Channel-neutral: a session is a call id, the flow's state and the answer given, both opaque text
here. The requests of one call are numbered (turn 0 starts the call, turn N answers the Nth
question); each is claimed before it is worked out, so of a request and its retry exactly one
does the work, and the retry is given the answer kept (`Claim.answer`). A session ends when the
call does (`drop`) or, if nobody says so, once it is left idle for `IDLE_LIFETIME`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import CallSession

log = logging.getLogger(__name__)

# Between two requests of a call there is one prompt list and one digit timeout: well under a
# minute. A session idle for longer than this belongs to a call that ended without telling us.
IDLE_LIFETIME = timedelta(minutes=15)
# A claimed request whose answer is not kept after this long was lost with its process.
WORK_LIFETIME = timedelta(seconds=30)

TABLE = CallSession.__table__


@dataclass(frozen=True)
class Claim:
    """What claiming a request found. `won`: this request does the work. Otherwise `answer` is
    the answer already given to it (a retry), `working` says another process is at it right now,
    and neither means the request is unknown: the call's session expired, ended or never was."""

    won: bool
    state: str | None = None
    answer: str | None = None
    working: bool = False


def begin(uow, call_id: str, service: str, state: str) -> Claim:
    """Turn 0: the session of a new call, claimed; or, for a retry of it, what was answered."""
    now = uow.clock.now()
    connection = uow.connection()
    # one statement: of a request and its retry racing, exactly one inserts
    inserted = connection.execute(
        _insert_for(connection.dialect.name).values(
            call_id=call_id, service=service, state=state, turn=0, answer=None,
            updated_at=now, expires_at=now + IDLE_LIFETIME)
        .on_conflict_do_nothing(index_elements=["call_id"]).returning(TABLE.c.call_id)
    ).first()
    if inserted is not None:
        uow.commit()
        return Claim(won=True, state=state)
    found = _found(uow, call_id, 0, now)
    uow.commit()
    return found


def claim(uow, call_id: str, turn: int) -> Claim:
    """Request number `turn` (1, 2, ...) of a call: won when the previous one has been answered and
    this one not yet claimed; else the answer kept for it, or nothing (unknown or expired)."""
    now = uow.clock.now()
    won = uow.connection().execute(
        update(TABLE)
        .where(TABLE.c.call_id == call_id, TABLE.c.turn == turn - 1, TABLE.c.answer.is_not(None),
               TABLE.c.expires_at > now)
        .values(turn=turn, answer=None, updated_at=now, expires_at=now + IDLE_LIFETIME)
        .returning(TABLE.c.state)
    ).first()
    if won is not None:
        uow.commit()
        return Claim(won=True, state=won.state)
    found = _found(uow, call_id, turn, now)
    uow.commit()
    return found


def keep_answer(uow, call_id: str, turn: int, state: str, answer: str) -> None:
    """The flow's state after request `turn` and what it was answered, for the next request and
    for a retry of this one."""
    now = uow.clock.now()
    uow.connection().execute(
        update(TABLE).where(TABLE.c.call_id == call_id, TABLE.c.turn == turn)
        .values(state=state, answer=answer, updated_at=now, expires_at=now + IDLE_LIFETIME))
    uow.commit()


def drop(uow, call_id: str) -> str | None:
    """The call ended: forget it. The state it was left in, None when there was nothing to forget."""
    connection = uow.connection()
    state = connection.execute(select(TABLE.c.state).where(TABLE.c.call_id == call_id)).scalar()
    connection.execute(delete(TABLE).where(TABLE.c.call_id == call_id))
    uow.commit()
    return state


def drop_expired(uow) -> int:
    """Forget every session left idle past its lifetime; returns how many."""
    gone = uow.connection().execute(delete(TABLE).where(TABLE.c.expires_at <= uow.clock.now())).rowcount
    uow.commit()
    if gone:
        log.info("call sessions: %d expired, dropped", gone)
    return gone


def _insert_for(dialect_name: str):
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(TABLE)


def _found(uow, call_id: str, turn: int, now: datetime) -> Claim:
    row = uow.connection().execute(
        select(TABLE.c.turn, TABLE.c.answer, TABLE.c.updated_at, TABLE.c.expires_at)
        .where(TABLE.c.call_id == call_id)).first()
    if row is None or row.expires_at <= now or row.turn != turn:
        return Claim(won=False)
    if row.answer is not None:
        return Claim(won=False, answer=row.answer)
    return Claim(won=False, working=now - row.updated_at < WORK_LIFETIME)
