"""Sign-in by a one-time code sent by SMS, API bearer tokens and page sessions, all on the database.

Everything lives in tables (migration 0007), never in a process's memory, so the limits hold across
the processes of `selfcare serve` and across boxes sharing one PostgreSQL:

- `request_code(uow, number, client)` makes a challenge: 6 random digits (`secrets`), valid
  `CODE_TTL` (5 minutes), bound to the number and to a random `request_id` the client gets back.
  The code goes out through the outbox (`signin-code` in texts/notifications.toml, in the line's
  language) and the configured SMS transport. A number we do not serve (unknown or closed) gets a
  challenge and a request id just the same, but no SMS: the answer tells nobody whether a number
  is ours. At most `CODES_PER_NUMBER` codes per number and `CODES_PER_CLIENT` per client address
  in a clock hour (an atomic upsert on `signin_quota`), for served and unserved numbers alike.
- `verify_code(uow, request_id, number, code, kind)` checks the code under the challenge's row lock
  (PostgreSQL `FOR UPDATE`; SQLite's one writer): a wrong code is counted and committed before the
  refusal, so the sixth try is refused whichever process takes it, even with the right code. A
  right code is used up and opens a session: `kind="api"` a bearer token (`TOKEN_TTL`, no idle
  limit), `kind="page"` a page session (`PAGE_IDLE` idle timeout, `PAGE_TTL` at most).
- `authenticate(uow, secret, kind)` finds the signed-in line for a token or a session cookie's
  value; revoked, expired, idle and unknown secrets get one and the same refusal (`NotSignedIn`).
  It only reads (run it on `core.reader()`); a page session whose `needs_touch` is set should be
  touched (`touch(uow, signed)`, on a writer) so its idle timer restarts; that write happens at
  most once a minute per session. `sign_out` revokes one secret, `sign_out_everywhere` all of a line's.

Why a keyed HMAC (HMAC-SHA256 under $SELFCARE_SIGNIN_KEY) and not argon2 for the code: a 6-digit
code has only a million values, so no password hash makes a stolen digest safe to brute-force
offline — only a key the database does not hold does. The code lives 5 minutes and 5 tries, and
argon2 would cost tens of milliseconds of CPU per try on a 2-core box (an easy way to load it).
The digest covers the request id and the number as well, so a code opens only its own challenge.
Tokens and session secrets are 256 random bits: their plain SHA-256 is already unsearchable, and a
digest lookup stays one indexed read per request.

The code itself waits in the outbox row's parameters until the SMS is out, like every message's
values (the dispatcher words the text when it sends), and no longer: the acknowledgement that marks
the message sent blanks it (billing/outbox.py, FORGET_WHEN_SENT), and `purge` drops a code message
still unsent when its code has expired (it would open nothing). Pages (web/) use it:

    with core.uow() as uow:  request_id = signin.request_code(uow, number, request.remote_addr)
    with core.uow() as uow:  issued = signin.verify_code(uow, request_id, number, code, "page")
    # set issued.secret as an HttpOnly, Secure, SameSite cookie; then, per request:
    with core.reader() as uow:  signed = signin.authenticate(uow, cookie_value, "page")
    if signed.needs_touch:  with core.uow() as uow: signin.touch(uow, signed)

`web.auth` wraps this for Flask (`current_subscriber()`, `web.auth.PAGE_COOKIE`); billing knows no Flask.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from . import outbox, validity
from .driver_sql import DriverStatement
from .errors import CodeExpired, InvalidCode, NotSignedIn, TooManyCodes, TooManyWrongCodes, WrongCode
from .models import OutboxMessage, SigninChallenge, SigninQuota, Subscriber, WebSession
from .msisdn import mask, normalize

log = logging.getLogger("billing.signin")

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_WRONG_TRIES = 5
CODES_PER_NUMBER = 5  # per clock hour
CODES_PER_CLIENT = 30  # per clock hour: a family or an office behind one address signs in too
QUOTA_WINDOW = timedelta(hours=1)
TOKEN_TTL = timedelta(days=30)
PAGE_TTL = timedelta(hours=12)
PAGE_IDLE = timedelta(minutes=30)
TOUCH_EVERY = timedelta(minutes=1)  # a page session's idle timer is written at most this often
KINDS = ("api", "page")
CODE_TEMPLATE = "signin-code"  # texts/notifications.toml

CODE = re.compile(r"^[0-9]{6}$")  # ASCII digits only
KEY_ENV = "SELFCARE_SIGNIN_KEY"
# Good for demos and tests only: an operator sets its own key (docs/operations.md).
DEFAULT_KEY = "selfcare-demo-signin-key"


def _key() -> bytes:
    return (os.environ.get(KEY_ENV) or DEFAULT_KEY).encode("utf-8")


def code_digest(request_id: str, msisdn: str, code: str) -> str:
    message = f"{request_id}\n{msisdn}\n{code}".encode("utf-8")
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# -- asking for a code -----------------------------------------------------------------------

def _window(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def _count_request(uow, scope: str, window: datetime) -> int:
    """One more request in `scope` this hour; how many there are now (atomic across processes)."""
    table = SigninQuota.__table__
    connection = uow.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(scope=scope, window_start=window, count=1)
    statement = statement.on_conflict_do_update(index_elements=[table.c.scope],
                                                set_={"count": table.c.count + 1}).returning(table.c.count)
    return connection.execute(statement).scalar_one()


def _served_line(uow, number: str) -> Subscriber | None:
    line = uow.session.scalar(select(Subscriber).where(Subscriber.msisdn == number))
    if line is None or validity.status_now(line, uow.clock.now().date()) == validity.CLOSED:
        return None
    return line


def request_code(uow, msisdn: str, client: str) -> str:
    """A new challenge for `msisdn`; returns its request id (the same answer for every number)."""
    number = normalize(msisdn)  # InvalidMsisdn: not a number at all, which reveals nothing
    now = uow.clock.now()
    window = _window(now)
    uow.connection().execute(delete(SigninQuota.__table__).where(SigninQuota.window_start < window))
    by_number = _count_request(uow, f"number:{number}:{window:%Y%m%d%H}", window)
    by_client = _count_request(uow, f"client:{client[:80]}:{window:%Y%m%d%H}", window)
    if by_number > CODES_PER_NUMBER or by_client > CODES_PER_CLIENT:
        log.info("sign-in code refused for %s: %d codes this hour (client %d)", mask(number), by_number, by_client)
        raise TooManyCodes("too many sign-in codes asked for this hour", until=window + QUOTA_WINDOW)
    request_id = secrets.token_urlsafe(24)
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    uow.session.add(SigninChallenge(request_id=request_id, msisdn=number,
                                    code_digest=code_digest(request_id, number, code),
                                    created_at=now, expires_at=now + CODE_TTL, wrong_tries=0))
    line = _served_line(uow, number)
    if line is not None:
        outbox.enqueue(uow, line, CODE_TEMPLATE, {"code": code, "minutes": int(CODE_TTL.total_seconds() // 60)},
                       key=f"signin:{request_id}")
    uow.commit()
    log.info("sign-in code asked for %s (%s)", mask(number), "sent" if line is not None else "not served: none sent")
    return request_id


# -- checking it -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Issued:
    """A new token or page session. `secret` is shown to the client once; only its digest is kept."""
    secret: str
    kind: str
    msisdn: str
    expires_at: datetime


def verify_code(uow, request_id: str, msisdn: str, code: str, kind: str = "api") -> Issued:
    """The session a right code opens. Run it in a unit of work of its own (not inside `atomic()`):
    a wrong code is committed here before the refusal is raised."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    number = normalize(msisdn)
    if not isinstance(code, str) or not CODE.match(code):
        raise InvalidCode("a sign-in code is 6 digits")
    challenge = uow.session.scalar(
        select(SigninChallenge).where(SigninChallenge.request_id == str(request_id)).with_for_update())
    now = uow.clock.now()
    # Another number's request id, an unknown one, a used or an old code: one answer, ask again.
    if challenge is None or challenge.msisdn != number or challenge.used_at is not None or now >= challenge.expires_at:
        raise CodeExpired("this sign-in code is no longer valid: ask for a new one")
    if challenge.wrong_tries >= MAX_WRONG_TRIES:
        raise TooManyWrongCodes("too many wrong codes: ask for a new one")
    line = _served_line(uow, number)
    right = hmac.compare_digest(code_digest(challenge.request_id, number, code), challenge.code_digest)
    if not right or line is None:
        challenge.wrong_tries += 1
        tries_left = MAX_WRONG_TRIES - challenge.wrong_tries
        uow.commit()
        log.info("wrong sign-in code for %s (%d tries left)", mask(number), tries_left)
        raise WrongCode("wrong sign-in code", tries_left=tries_left)
    challenge.used_at = now
    issued = _open(uow, line, kind, now)
    uow.commit()
    log.info("signed in %s (%s)", mask(number), kind)
    return issued


def _open(uow, line: Subscriber, kind: str, now: datetime) -> Issued:
    secret = secrets.token_urlsafe(32)
    expires = now + (TOKEN_TTL if kind == "api" else PAGE_TTL)
    uow.session.add(WebSession(digest=secret_digest(secret), kind=kind, subscriber_id=line.id,
                               created_at=now, last_seen_at=now, expires_at=expires))
    return Issued(secret, kind, line.msisdn, expires)


# -- who is signed in ------------------------------------------------------------------------

@dataclass(frozen=True)
class Signed:
    session_id: int
    subscriber_id: int
    msisdn: str
    kind: str
    needs_touch: bool  # a page session whose idle timer should be written again (touch)


_SESSION = WebSession.__table__
_LINE = Subscriber.__table__
_FIND = DriverStatement(
    "SELECT web_session.id, web_session.subscriber_id, web_session.kind, web_session.last_seen_at, "
    "web_session.expires_at, web_session.revoked_at, subscriber.msisdn "
    "FROM web_session JOIN subscriber ON subscriber.id = web_session.subscriber_id "
    "WHERE web_session.digest = :digest",
    binds={},
    columns=[_SESSION.c.id, _SESSION.c.subscriber_id, _SESSION.c.kind, _SESSION.c.last_seen_at,
             _SESSION.c.expires_at, _SESSION.c.revoked_at, _LINE.c.msisdn])


def authenticate(uow, secret: str | None, kind: str) -> Signed:
    """The signed-in line for a bearer token (`api`) or a page session's secret (`page`)."""
    refused = NotSignedIn("not signed in, or the session ended: sign in again")
    if not secret or len(secret) > 200:
        raise refused
    row = _FIND.row(uow, {"digest": secret_digest(secret)})
    if row is None:
        raise refused
    session_id, subscriber_id, found_kind, last_seen, expires, revoked, msisdn = row
    now = uow.clock.now()
    if found_kind != kind or revoked is not None or now >= expires:
        raise refused
    if kind == "page" and now - last_seen >= PAGE_IDLE:
        raise refused
    return Signed(session_id, subscriber_id, msisdn, kind,
                  needs_touch=kind == "page" and now - last_seen >= TOUCH_EVERY)


def touch(uow, signed: Signed) -> None:
    """Restart a page session's idle timer."""
    uow.connection().execute(update(_SESSION).where(_SESSION.c.id == signed.session_id)
                             .values(last_seen_at=uow.clock.now()))
    uow.commit()


def sign_out(uow, secret: str | None) -> bool:
    """Revoke one token or page session; False when there was none to revoke."""
    if not secret:
        return False
    revoked = uow.connection().execute(
        update(_SESSION).where(_SESSION.c.digest == secret_digest(secret), _SESSION.c.revoked_at.is_(None))
        .values(revoked_at=uow.clock.now())).rowcount
    uow.commit()
    return revoked > 0


def sign_out_everywhere(uow, msisdn: str) -> int:
    """Revoke every token and page session of a line (a lost phone, a care agent's action)."""
    line_id = uow.session.scalar(select(Subscriber.id).where(Subscriber.msisdn == normalize(msisdn)))
    if line_id is None:
        return 0
    revoked = uow.connection().execute(
        update(_SESSION).where(_SESSION.c.subscriber_id == line_id, _SESSION.c.revoked_at.is_(None))
        .values(revoked_at=uow.clock.now())).rowcount
    uow.commit()
    return revoked


_OUTBOX = OutboxMessage.__table__


def purge(uow, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget challenges and ended sessions older than `older_than`, and code messages never sent
    whose code has expired (the worker's housekeeping, every tick); returns how many rows went."""
    now = uow.clock.now()
    cutoff = now - older_than
    # A code SMS the transport could not deliver in CODE_TTL would open nothing if it went out
    # later, and its row holds the code in plain text: drop it (a sent one was blanked when sent).
    # Here, not in the outbox: only sign-in knows how long its codes live. sent_at IS NULL keeps
    # this on the outbox's pending index.
    removed = uow.connection().execute(delete(_OUTBOX).where(
        _OUTBOX.c.sent_at.is_(None), _OUTBOX.c.template == CODE_TEMPLATE,
        _OUTBOX.c.created_at <= now - CODE_TTL)).rowcount
    if removed:
        log.info("%d sign-in code message(s) expired unsent: dropped", removed)
    removed += uow.connection().execute(delete(SigninChallenge.__table__)
                                        .where(SigninChallenge.expires_at < cutoff)).rowcount
    removed += uow.connection().execute(delete(_SESSION).where(_SESSION.c.expires_at < cutoff)).rowcount
    uow.commit()
    return removed
