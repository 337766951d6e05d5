"""Drill: PostgreSQL restarted in the middle of an SMS burst against a real `selfcare serve`.

Requests in flight are answered "service unavailable" (or completed), none is charged twice, and
the same serving tree recovers without a restart: once the database is back, the rest of the burst
is charged normally, and Kannel's retries (same ids) of what failed are charged exactly once.
A USSD gateway orders a pack on lines of its own through the same outage: each order is answered
"END <ordered>" or "END <unavailable>", and the gateway's retries charge each line once."""
from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from decimal import Decimal

from billing import services
from billing.core import Core
from tests.drills.serving import start_serve, stop_serve
from tests.drills.sms_burst import SMS_FEE, START_BALANCE, Burst, add_lines, entries_per_key, ledger_per_key, msisdn
from tests.e2e.test_serve import selfcare
from tests.peers.ports import free_port

LINES = 60
MESSAGES = 3000
CLIENTS = 16
RESTART_AFTER_REPLIES = 300
DOWN_S = 2.0  # how long the database is away: a fast restart plus a failover's worth of time
RECOVER_WITHIN_S = 15
USSD_LINES = 400  # lines LINES.. LINES+399: one pack order each, one every 10 ms, across the outage
PACK_PRICE = Decimal("3.00")  # billing/offers.toml: pack 1, *100*1#
USSD_ORDERED = "END 1 GB paketi "  # texts/ussd.toml pack-ordered, az
USSD_UNAVAILABLE = "END Xidmət müvəqqəti əlçatan deyil. Bir az sonra yenidən cəhd edin."  # service-error, az


class UssdGateway:
    """One keep-alive connection posting `*100*1#` for each of its lines, session `pgussd-<line>`;
    a reply is its text, `HTTP <status>`, or None when the connection failed."""

    def __init__(self, port: int):
        self.port, self.replies, self.conn = port, {}, None

    def order(self, line: int) -> None:
        body = urllib.parse.urlencode({"sessionId": f"pgussd-{line}", "serviceCode": "*100*1#",
                                       "phoneNumber": msisdn(line), "text": ""})
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.request("POST", "/ussd", body, {"Content-Type": "application/x-www-form-urlencoded"})
            answer = self.conn.getresponse()
            text = answer.read().decode()
            self.replies[line] = text if answer.status == 200 else f"HTTP {answer.status}"
        except (OSError, http.client.HTTPException):
            self.conn = None
            self.replies[line] = None

    def run(self, lines: range, stop: threading.Event) -> None:
        for line in lines:
            if stop.is_set():
                return
            self.order(line)
            time.sleep(0.01)

    def answered(self, start: str) -> list[int]:
        return sorted(n for n, text in self.replies.items() if text is not None and text.startswith(start))


def ussd_charges(db_url: str, lines: range) -> tuple[dict[str, int], list[int], list[Decimal]]:
    """(ledger entries per USSD key, packs per line, balance per line)."""
    core = Core(db_url)
    try:
        with core.reader() as uow:
            entries = entries_per_key(uow, "ussd:pgussd-%")
            packs = [len(services.pack_status(uow, msisdn(line))) for line in lines]
            balances = [services.balance_report(uow, msisdn(line)).balance for line in lines]
        return entries, packs, balances
    finally:
        core.dispose()


def test_postgresql_restarted_mid_burst_answers_unavailable_charges_once_and_recovers_in_place(own_postgres):
    url = own_postgres.url
    selfcare(url, "db", "upgrade")
    add_lines(url, LINES + USSD_LINES)
    ussd_lines = range(LINES, LINES + USSD_LINES)
    port = free_port()
    burst = Burst("pgdrill", LINES)
    serve = start_serve(url, port, free_port(), processes=2)
    try:
        sender = threading.Thread(target=burst.send, args=([port], list(range(MESSAGES)), CLIENTS))
        gateway, ussd_stop = UssdGateway(port), threading.Event()
        ussd = threading.Thread(target=gateway.run, args=(ussd_lines, ussd_stop))
        started = time.monotonic()
        sender.start()
        ussd.start()
        while len(burst.replies) < RESTART_AFTER_REPLIES and sender.is_alive():
            time.sleep(0.005)
        down_at = time.monotonic()
        own_postgres.pg_ctl("stop", "-m", "fast")  # cuts every connection, as a restart or failover does
        time.sleep(DOWN_S)  # the outage itself
        own_postgres.pg_ctl("start")
        back_at = time.monotonic()
        sender.join(120)
        ussd_stop.set()
        ussd.join(60)
        assert not sender.is_alive() and not ussd.is_alive()
        burst_s = time.monotonic() - started
        assert serve.poll() is None, "the serving tree died with the database"

        first_pass = {"charged": len(burst.charged()), "unavailable": len(burst.unavailable()),
                      "dropped": len(burst.failed()), "other": burst.other()}
        after_back = [t for n, (_text, t, _port) in burst.replies.items() if t > back_at and n in set(burst.charged())]
        recovered_s = (min(after_back) - back_at) if after_back else None
        failed_while_down = len([n for n in burst.unavailable() + burst.failed()])

        # Kannel retries what was not answered with a balance, with the same ids
        retry = Burst("pgdrill", LINES)
        retry.send([port], sorted(set(range(MESSAGES)) - set(burst.charged())), CLIENTS)
        # the USSD gateway retries every session it sent (same sessionId and step): an order
        # answered before is answered from memory, one answered unavailable is ordered now
        ussd_first = {"ordered": len(gateway.answered(USSD_ORDERED)),
                      "unavailable": len(gateway.answered(USSD_UNAVAILABLE)), "sent": len(gateway.replies)}
        ussd_other = sorted(set(gateway.replies) - set(gateway.answered(USSD_ORDERED))
                            - set(gateway.answered(USSD_UNAVAILABLE)))
        ussd_retry = UssdGateway(port)
        for line in sorted(gateway.replies):
            ussd_retry.order(line)
    finally:
        stop_serve(serve)

    print(f"\nDRILL postgres-restart: {MESSAGES} SMS, {CLIENTS} connections, database away {back_at - down_at:.1f} s "
          f"after {RESTART_AFTER_REPLIES} replies; first pass {first_pass}, burst {burst_s:.1f} s; "
          f"first charge {recovered_s if recovered_s is None else round(recovered_s, 2)} s after the database was back; "
          f"{len(retry.replies)} retried, {len(retry.charged())} charged on retry; "
          f"USSD pack orders {ussd_first}, all {len(ussd_retry.replies)} retried")
    assert first_pass["other"] == []
    assert first_pass["dropped"] == 0  # the tree outlives the database: every request gets words
    assert failed_while_down > 0, "the outage cut no request: the drill drilled nothing"
    assert recovered_s is not None and recovered_s < RECOVER_WITHIN_S
    assert retry.other() == [] and len(retry.charged()) == len(retry.replies)
    per_key, problems, balances = ledger_per_key(url, "pgdrill", LINES)
    assert len(per_key) == MESSAGES and set(per_key.values()) == {1}  # every message charged, and once
    assert problems == []
    assert balances == [START_BALANCE - SMS_FEE * (MESSAGES // LINES)] * LINES
    assert ussd_other == [] and ussd_first["unavailable"] > 0, "no USSD order met the outage"
    assert ussd_retry.answered(USSD_ORDERED) == sorted(gateway.replies)
    sent = sorted(gateway.replies)
    ussd_keys, ussd_packs, ussd_balances = ussd_charges(url, sent)
    assert len(ussd_keys) == len(sent) and set(ussd_keys.values()) == {1}  # each order charged, and once
    assert ussd_packs == [1] * len(sent) and ussd_balances == [START_BALANCE - PACK_PRICE] * len(sent)
