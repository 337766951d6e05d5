"""Transactional outbox: notifications are written with the change they report, and a dispatcher
delivers them later, at least once; the transport de-duplicates on the message key.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Protocol

from sqlalchemy import select

from .ledger import account_value
from .models import OutboxMessage, Subscriber
from .msisdn import mask

log = logging.getLogger("billing.outbox")

MAX_ATTEMPTS = 10


def enqueue(uow, line: Subscriber, template: str, params: dict, key: str) -> None:
    now = uow.clock.now()
    uow.session.add(
        OutboxMessage(
            key=key,
            msisdn=line.msisdn,
            language=line.language,
            template=template,
            params=json.dumps(params, sort_keys=True, default=str),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )


def notify_balance_change(uow, line: Subscriber, change, reason: str, key: str) -> None:
    """Seed 000's automatic update after a balance change, unless the subscriber switched it off."""
    if not line.notify_balance:
        return
    account = "balance" if line.plan == "prepaid" else "current"
    enqueue(
        uow,
        line,
        "balance-changed",
        {"change": f"{change:.4f}", "reason": reason, "account": account,
         "value": f"{account_value(line, account):.4f}"},
        key=f"{key}:notify",
    )


@dataclass(frozen=True)
class Outgoing:
    key: str
    msisdn: str
    language: str
    template: str
    params: dict


class Transport(Protocol):
    def send(self, message: Outgoing, text: str) -> None: ...


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(3600, 5 * 2 ** attempts))


def dispatch_pending(core, transport: Transport, render: Callable[[Outgoing], str], limit: int = 100) -> int:
    """Deliver up to `limit` due messages; returns how many were sent.

    A message is marked sent only after the transport accepted it, so a crash in between sends
    it again (at least once); transports pass the key along (Kannel's id, a log line) so the
    far side can drop the twin.
    """
    sent = 0
    with core.uow() as uow:
        now = uow.clock.now()
        due = uow.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now,
                   OutboxMessage.attempts < MAX_ATTEMPTS)
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
        for row in due:
            message = Outgoing(row.key, row.msisdn, row.language, row.template, json.loads(row.params))
            row.attempts += 1
            try:
                transport.send(message, render(message))
            except Exception as exc:  # any transport failure: retry later, never lose the message
                row.last_error = str(exc)[:500]
                row.next_attempt_at = now + _backoff(row.attempts)
                log.warning("outbox %s to %s failed (attempt %d): %s", row.key, mask(row.msisdn), row.attempts, exc)
                continue
            row.sent_at = now
            sent += 1
            log.info("outbox %s sent to %s", row.template, mask(row.msisdn))
        uow.commit()
    return sent


def pending(uow) -> list[OutboxMessage]:
    return list(uow.session.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id)))
