"""Drill: PostgreSQL restarted in the middle of an SMS burst against a real `selfcare serve`.

Requests in flight are answered "service unavailable" (or completed), none is charged twice, and
the same serving tree recovers without a restart: once the database is back, the rest of the burst
is charged normally, and Kannel's retries (same ids) of what failed are charged exactly once."""
from __future__ import annotations

import threading
import time

from tests.drills.serving import start_serve, stop_serve
from tests.drills.sms_burst import SMS_FEE, START_BALANCE, Burst, add_lines, ledger_per_key
from tests.e2e.test_serve import selfcare
from tests.peers.ports import free_port

LINES = 60
MESSAGES = 3000
CLIENTS = 16
RESTART_AFTER_REPLIES = 300
DOWN_S = 2.0  # how long the database is away: a fast restart plus a failover's worth of time
RECOVER_WITHIN_S = 15


def test_postgresql_restarted_mid_burst_answers_unavailable_charges_once_and_recovers_in_place(own_postgres):
    url = own_postgres.url
    selfcare(url, "db", "upgrade")
    add_lines(url, LINES)
    port = free_port()
    burst = Burst("pgdrill", LINES)
    serve = start_serve(url, port, free_port(), processes=2)
    try:
        sender = threading.Thread(target=burst.send, args=([port], list(range(MESSAGES)), CLIENTS))
        started = time.monotonic()
        sender.start()
        while len(burst.replies) < RESTART_AFTER_REPLIES and sender.is_alive():
            time.sleep(0.005)
        down_at = time.monotonic()
        own_postgres.pg_ctl("stop", "-m", "fast")  # cuts every connection, as a restart or failover does
        time.sleep(DOWN_S)  # the outage itself
        own_postgres.pg_ctl("start")
        back_at = time.monotonic()
        sender.join(120)
        assert not sender.is_alive()
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
    finally:
        stop_serve(serve)

    print(f"\nDRILL postgres-restart: {MESSAGES} SMS, {CLIENTS} connections, database away {back_at - down_at:.1f} s "
          f"after {RESTART_AFTER_REPLIES} replies; first pass {first_pass}, burst {burst_s:.1f} s; "
          f"first charge {recovered_s if recovered_s is None else round(recovered_s, 2)} s after the database was back; "
          f"{len(retry.replies)} retried, {len(retry.charged())} charged on retry")
    assert first_pass["other"] == []
    assert failed_while_down > 0, "the outage cut no request: the drill drilled nothing"
    assert recovered_s is not None and recovered_s < RECOVER_WITHIN_S
    assert retry.other() == [] and len(retry.charged()) == len(retry.replies)
    per_key, problems, balances = ledger_per_key(url, "pgdrill", LINES)
    assert len(per_key) == MESSAGES and set(per_key.values()) == {1}  # every message charged, and once
    assert problems == []
    assert balances == [START_BALANCE - SMS_FEE * (MESSAGES // LINES)] * LINES
