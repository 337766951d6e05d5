"""Test support for the outbox: a line with many pending messages, transports that count, hang or
crash, and the migration check both databases run."""
from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

from sqlalchemy import select, text

from billing import outbox, services
from billing.models import OutboxMessage, Subscriber, message_ref

PRE = "+994501234567"
PARAMS = {"change": "-0.0400", "reason": "call", "account": "balance", "value": "1.0000"}


def render(message) -> str:
    return f"text of {message.ref}"


def fill_outbox(core, count: int, msisdn: str = PRE, prefix: str = "test") -> list[str]:
    """A prepaid line and `count` pending messages for it; returns their keys in order.
    (The keys hold the number on purpose: it must not leave the system or reach a log line.)"""
    with core.uow() as uow:
        services.add_subscriber(uow, msisdn, "prepaid", balance=Decimal("1.00"))
    keys = [f"{prefix}:{msisdn}:{n:05d}:notify" for n in range(count)]
    with core.uow() as uow:
        line = uow.session.scalars(select(Subscriber).where(Subscriber.msisdn == msisdn)).one()
        for key in keys:
            outbox.enqueue(uow, line, "balance-changed", PARAMS, key=key)
        uow.commit()
    return keys


def rows(core) -> list[OutboxMessage]:
    with core.uow() as uow:
        return list(uow.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


class CountingTransport:
    """Accepts everything and counts each key it was handed (shared by several workers)."""

    def __init__(self):
        self.sent: Counter = Counter()
        self.by_worker: Counter = Counter()
        self._lock = threading.Lock()
        self.timeout_s = 10.0

    def send(self, message, text_) -> None:
        with self._lock:
            self.sent[message.key] += 1

    def for_worker(self, name: str):
        counting = self

        class _Worker:
            timeout_s = 10.0

            def send(self, message, text_):
                counting.send(message, text_)
                with counting._lock:
                    counting.by_worker[name] += 1

        return _Worker()


class Crash(BaseException):
    """The process dies (kill -9, power cut): nothing after this line of the dispatcher runs."""


class CrashingTransport(CountingTransport):
    """Hands `survive` messages over, then dies right after handing over the next one."""

    def __init__(self, survive: int):
        super().__init__()
        self.survive = survive

    def send(self, message, text_) -> None:
        super().send(message, text_)
        if sum(self.sent.values()) > self.survive:
            raise Crash(message.key)


def drain_in_threads(cores, transport: CountingTransport, **kw) -> None:
    """One dispatcher per core, all started together, each running until it finds nothing due."""
    start = threading.Barrier(len(cores), timeout=60)
    errors = []

    def work(index, core):
        worker = transport.for_worker(f"w{index}")
        try:
            start.wait()
            while outbox.dispatch_pending(core, worker, render, **kw):
                pass
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, c), name=f"dispatcher-{i}") for i, c in enumerate(cores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive(), "a dispatcher did not finish"
    assert not errors, errors


def check_migration_0003(engine) -> None:
    """From 0002 with a message in the outbox up to 0003 (refs filled in), down and up again."""
    from alembic import command

    from billing.migrate import alembic_config, upgrade

    upgrade(engine, "0002")
    key = "demo:topup:+994501234567:notify"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox_message (key, msisdn, language, template, params, created_at, attempts, "
            "next_attempt_at) VALUES (:key, '+994501234567', 'az', 'balance-changed', '{}', "
            "'2026-11-22 12:00:00', 0, '2026-11-22 12:00:00')"), {"key": key})
    upgrade(engine, "0003_outbox_claims")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003_outbox_claims"
        ref, token, status = conn.execute(text("SELECT ref, claim_token, delivery_status FROM outbox_message")).one()
    assert ref == message_ref(key) and len(ref) == 24 and "994" not in ref
    assert token is None and status is None
    command.downgrade(alembic_config(engine), "0002")
    with engine.connect() as conn:
        columns = conn.execute(text("SELECT * FROM outbox_message")).keys()
    assert "ref" not in columns and "claim_token" not in columns
    upgrade(engine, "head")
