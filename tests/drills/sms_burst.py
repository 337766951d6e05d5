"""An SMS burst against a running `selfcare serve`, the way smsbox sends it: keep-alive connections
to GET /sms/kannel, each message with its own id, each reply timed."""
from __future__ import annotations

import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select

from billing import services
from billing.core import Core
from billing.models import LedgerEntry, Operation
import http.client

SECRET = "drill-secret"
BALANCE_REPLY = "Balansınız: "  # texts/sms.toml prepaid-balance, az
UNAVAILABLE_REPLY = "Xidmət müvəqqəti əlçatan deyil, bir az sonra yenidən cəhd edin."  # texts/sms.toml unavailable, az
SMS_FEE = Decimal("0.02")  # billing/tariffs.toml: a balance SMS to 2112 on the default tariff
START_BALANCE = Decimal("1000.00")


def msisdn(line: int) -> str:
    return f"+99450{7200000 + line:07d}"


def add_lines(db_url: str, count: int) -> None:
    core = Core(db_url)
    try:
        for line in range(count):
            with core.uow() as uow:
                services.add_subscriber(uow, msisdn(line), "prepaid", balance=START_BALANCE)
    finally:
        core.dispose()


class Client:
    """One keep-alive connection; a reply is its text, `HTTP <status>` for another status than 200,
    or None when the server was not there to answer."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> str | None:
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request("GET", path)
            answer = self.conn.getresponse()
            body = answer.read().decode()
            return body if answer.status == 200 else f"HTTP {answer.status}"
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None


@dataclass
class Burst:
    """Message number -> (reply or None when the server was not there, monotonic time answered, port)."""
    prefix: str
    lines: int
    replies: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _answered(self) -> list[tuple[int, str | None]]:
        """(message number, reply) so far: a copy, as the drill reads while the clients still write."""
        with self._lock:
            return [(n, text) for n, (text, *_when) in self.replies.items()]

    def path(self, number: int) -> str:
        query = urllib.parse.urlencode({"from": msisdn(number % self.lines), "to": "2112", "text": "",
                                        "id": f"{self.prefix}-{number}", "secret": SECRET})
        return f"/sms/kannel?{query}"

    def send(self, ports: list[int], numbers: list[int], clients: int) -> None:
        """Each client keeps one connection to one of `ports` (round robin), as smsbox would to a
        balancer's backends; a failed request is recorded as None and the client reconnects."""
        pending = iter(numbers)
        lock = threading.Lock()

        def run(port: int) -> None:
            client = Client(port)
            while True:
                with lock:
                    number = next(pending, None)
                if number is None:
                    return
                reply = client.get(self.path(number))
                with self._lock:
                    self.replies[number] = (reply, time.monotonic(), port)

        with ThreadPoolExecutor(clients) as pool:
            for future in [pool.submit(run, ports[i % len(ports)]) for i in range(clients)]:
                future.result()

    def charged(self) -> list[int]:
        return sorted(n for n, text in self._answered() if text and text.startswith(BALANCE_REPLY))

    def unavailable(self) -> list[int]:
        return sorted(n for n, text in self._answered() if text == UNAVAILABLE_REPLY)

    def other(self) -> list[int]:
        """Neither charged nor 'unavailable' nor a dropped connection: must stay empty."""
        return sorted({n for n, _text in self._answered()} - set(self.charged()) - set(self.unavailable())
                      - set(self.failed()))

    def failed(self) -> list[int]:
        return sorted(n for n, text in self._answered() if text is None)


def entries_per_key(uow, like: str) -> dict[str, int]:
    """Ledger entries per operation key matching the SQL pattern `like`."""
    rows = uow.session.execute(
        select(Operation.key, func.count(LedgerEntry.id))
        .join(LedgerEntry, LedgerEntry.operation_id == Operation.id)
        .where(Operation.key.like(like)).group_by(Operation.key)).all()
    return dict(rows)


def ledger_per_key(db_url: str, prefix: str, lines: int) -> tuple[dict[str, int], list, list]:
    """(ledger entries per key of this burst, audit problems, each line's balance)."""
    core = Core(db_url)
    try:
        with core.uow() as uow:
            entries = entries_per_key(uow, f"kannel:{prefix}-%")
            problems = services.audit(uow)
            balances = [services.balance_report(uow, msisdn(line)).balance for line in range(lines)]
        return entries, problems, balances
    finally:
        core.dispose()
