"""Transactional outbox: notifications are written with the change they report, and a dispatcher
delivers them later: claim -> send -> acknowledge, each step apart.

- Claim: one short transaction takes up to `batch` due messages, stamps them with a token and moves
  their next attempt to the end of a lease. On PostgreSQL the rows are picked `FOR UPDATE SKIP
  LOCKED`, so two workers take different rows without waiting for each other; on SQLite one writer
  runs at a time, so the same UPDATE is atomic by itself.
- Send: outside any transaction, so a slow or hanging transport holds no lock and delays no charge.
- Acknowledge: one short transaction per message marks it sent, or failed with a back-off.

A message is handed to the transport only while at least the transport's timeout plus a margin is
left of its lease: no other worker can claim it while it is in flight. If the process dies after
handing one over and before acknowledging it, that message is due again when its lease runs out
and goes out a second time (at least once); the ones claimed behind it were never handed over, so
they go out for the first time. Transports pass `Outgoing.ref` on (a digest of the key) so the far
side can report deliveries (`record_delivery`) and, where it can, drop a twin.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable, Protocol

from sqlalchemy import select, update

from . import ledger
from .money import held, owed
from .models import OutboxMessage, Subscriber, message_ref
from .msisdn import mask, mask_numbers

log = logging.getLogger("billing.outbox")

MAX_ATTEMPTS = 10


def enqueue(uow, line: Subscriber, template: str, params: dict, key: str) -> None:
    now = uow.clock.now()
    uow.session.add(
        OutboxMessage(
            key=key,
            ref=message_ref(key),
            msisdn=line.msisdn,
            language=line.language,
            template=template,
            params=json.dumps(params, sort_keys=True, default=str),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )


PAYMENT_KINDS = ("topup", "card")


def notify_balance_change(uow, line: Subscriber, op, reason: str) -> None:
    """Seed 000's automatic update after a change to the line's money, unless the subscriber switched
    it off: one message for what `op` did, naming its parts with their real signs, and the figure
    it leaves (rounded as shown everywhere: what the subscriber has down, what they owe up).

    `reason` is what the subscriber did: call, data, pack, topup, card, credit:nar, credit:sos.
    """
    if not line.notify_balance:
        return
    def posted(account, kinds=None):
        return ledger.posted_by(op, line, account, kinds)

    if line.plan == "prepaid":
        repaid = -posted("balance", ("credit:repay",))
        if repaid:
            template = "topped-up-debt-repaid"
            debt = ledger.account_value(line, "nar_debt") + ledger.account_value(line, "sos_debt")
            params = {"amount": posted("balance", PAYMENT_KINDS), "repaid": repaid, "debt": owed(debt)}
        else:
            template, params = "balance-changed", {"account": "balance", "change": posted("balance")}
        params["value"] = held(ledger.account_value(line, "balance"))
    elif reason in PAYMENT_KINDS:
        template = "payment-received"
        bill_paid = -posted("billed")
        params = {"amount": bill_paid + posted("advance"), "bill_paid": bill_paid,
                  "billed": owed(ledger.account_value(line, "billed")),
                  "advance": held(ledger.account_value(line, "advance"))}
    else:
        template = "balance-changed"
        params = {"account": "current", "change": posted("current"),
                  "value": owed(ledger.account_value(line, "current"))}
    params["reason"] = reason
    enqueue(uow, line, template, {k: f"{v:.4f}" if isinstance(v, Decimal) else v for k, v in params.items()},
            key=f"{op.key}:notify")


@dataclass(frozen=True)
class Outgoing:
    key: str
    msisdn: str
    language: str
    template: str
    params: dict

    @property
    def ref(self) -> str:
        """What the message is called outside: in a transport's request, in log lines."""
        return message_ref(self.key)


class Transport(Protocol):
    def send(self, message: Outgoing, text: str) -> None: ...


ref_of = message_ref

CLAIM_BATCH = 10
LEASE_MARGIN = timedelta(seconds=30)  # clock skew between workers, an acknowledgement kept waiting
MIN_LEASE = timedelta(minutes=2)

_OUTBOX = OutboxMessage.__table__


def lease_for(send_timeout_s: float) -> tuple[timedelta, timedelta]:
    """(lease, budget): a claim lasts `lease`; a message is handed over only while `budget` (the
    transport's timeout plus the margin) is left of it. With a 10 s timeout: 2 min and 40 s."""
    budget = timedelta(seconds=send_timeout_s) + LEASE_MARGIN
    return max(MIN_LEASE, 3 * budget), budget


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2 ** attempts))


@dataclass(frozen=True)
class Claimed:
    id: int
    token: str
    lease_until: datetime
    attempts: int
    message: Outgoing


def claim_due(core, batch: int, lease: timedelta) -> list[Claimed]:
    """Take up to `batch` due messages for this caller until `now + lease` (one short transaction)."""
    token = uuid.uuid4().hex
    with core.uow() as uow:
        now = uow.clock.now()
        until = now + lease
        due = (
            select(_OUTBOX.c.id)
            .where(_OUTBOX.c.sent_at.is_(None), _OUTBOX.c.next_attempt_at <= now,
                   _OUTBOX.c.attempts < MAX_ATTEMPTS)
            .order_by(_OUTBOX.c.id)
            .limit(batch)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has no such clause and needs none
        )
        rows = uow.connection().execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(due))
            .values(claim_token=token, next_attempt_at=until, attempts=_OUTBOX.c.attempts + 1)
            .returning(_OUTBOX.c.id, _OUTBOX.c.key, _OUTBOX.c.msisdn, _OUTBOX.c.language,
                       _OUTBOX.c.template, _OUTBOX.c.params, _OUTBOX.c.attempts)
        ).all()
        uow.commit()
    return sorted(
        (Claimed(r.id, token, until, r.attempts,
                 Outgoing(r.key, r.msisdn, r.language, r.template, json.loads(r.params))) for r in rows),
        key=lambda c: c.id,
    )


def _ours(claimed: Claimed):
    return (_OUTBOX.c.id == claimed.id, _OUTBOX.c.claim_token == claimed.token, _OUTBOX.c.sent_at.is_(None))


# Parameters that must not outlive their message, blanked by the acknowledgement that marks it sent.
# A sign-in code is of use only until the SMS carrying it is out; kept after that, whoever reads
# this table could race the subscriber for it. Here rather than in a later job: the same UPDATE
# that marks the message sent blanks it, so no sent code waits for a tick and no extra statement
# runs. (A code never sent is dropped by billing.signin.purge once it has expired.)
FORGET_WHEN_SENT = {"signin-code": ("code",)}


def acknowledge_sent(core, claimed: Claimed) -> None:
    # Sent is a fact whoever holds the claim now: no token condition.
    values = {"claim_token": None}
    forget = FORGET_WHEN_SENT.get(claimed.message.template, ())
    if forget:
        kept = {**claimed.message.params, **dict.fromkeys(forget, "")}
        values["params"] = json.dumps(kept, sort_keys=True, default=str)
    with core.uow() as uow:
        uow.connection().execute(
            update(_OUTBOX).where(_OUTBOX.c.id == claimed.id, _OUTBOX.c.sent_at.is_(None))
            .values(sent_at=uow.clock.now(), **values)
        )
        uow.commit()


def acknowledge_failed(core, claimed: Claimed, error: str) -> None:
    with core.uow() as uow:
        now = uow.clock.now()
        uow.connection().execute(
            update(_OUTBOX).where(*_ours(claimed))
            .values(claim_token=None, last_error=error[:500], next_attempt_at=now + _backoff(claimed.attempts))
        )
        uow.commit()


def release(core, claims: list[Claimed]) -> None:
    """Give back claims never handed to the transport: due at once, the attempt not counted."""
    if not claims:
        return
    token = claims[0].token
    with core.uow() as uow:
        uow.connection().execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_([c.id for c in claims]), _OUTBOX.c.claim_token == token,
                   _OUTBOX.c.sent_at.is_(None))
            .values(claim_token=None, next_attempt_at=uow.clock.now(), attempts=_OUTBOX.c.attempts - 1)
        )
        uow.commit()


def dispatch_pending(core, transport: Transport, render: Callable[[Outgoing], str], limit: int = 100,
                     batch: int = CLAIM_BATCH, send_timeout_s: float = 10.0) -> int:
    """Deliver up to `limit` due messages, `batch` claimed at a time; returns how many were sent.

    `send_timeout_s` is the longest the transport takes to accept or fail; the lease follows it.
    """
    lease, budget = lease_for(send_timeout_s)
    sent = handled = 0
    while handled < limit:
        claims = claim_due(core, min(batch, limit - handled), lease)
        if not claims:
            break
        handled += len(claims)
        for index, claimed in enumerate(claims):
            if core.clock.now() + budget > claimed.lease_until:
                # The transport is slow today: what is left of the lease would not cover one more send.
                release(core, claims[index:])
                log.warning("outbox: transport slow, %d claimed messages given back", len(claims) - index)
                return sent
            message = claimed.message
            try:
                transport.send(message, render(message))
            except Exception as exc:  # any transport failure: retry later, never lose the message
                error = mask_numbers(str(exc))
                acknowledge_failed(core, claimed, error)
                log.warning("outbox %s to %s failed (attempt %d): %s", message.ref, mask(message.msisdn),
                            claimed.attempts, error)
                continue
            acknowledge_sent(core, claimed)
            sent += 1
            log.info("outbox %s %s sent to %s", message.ref, message.template, mask(message.msisdn))
    return sent


DELIVERY_STATES = ("accepted", "buffered", "delivered", "undelivered", "rejected")
# A report never gives way to a less telling one (reports of one message can arrive out of order,
# one per part of a long message): the far network's acceptance or buffering < delivery to the
# handset < a failure of the handset or of the far network (one failed part fails the message).
_DELIVERY_RANK = {"accepted": 1, "buffered": 1, "delivered": 2, "undelivered": 3, "rejected": 3}


def record_delivery(uow, ref: str, status: str) -> bool:
    """A delivery report for the message sent as `ref`; False when no message goes by that name."""
    if status not in _DELIVERY_RANK:
        raise ValueError(f"delivery status must be one of {', '.join(DELIVERY_STATES)}, not {status!r}")
    row = uow.session.scalars(select(OutboxMessage).where(OutboxMessage.ref == ref).with_for_update()).first()
    if row is None:
        uow.rollback()
        return False
    if _DELIVERY_RANK[status] >= _DELIVERY_RANK.get(row.delivery_status, 0):
        row.delivery_status = status
        row.delivery_at = uow.clock.now()
    uow.commit()
    return True


def pending(uow) -> list[OutboxMessage]:
    return list(uow.session.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id)))
