"""Two serving boxes, one PostgreSQL: two `selfcare serve` trees (own ports, own workers) on one
database share an SMS burst; one is killed (`kill -9`) in the middle, its clients go to the other
(as a balancer or Kannel's retry does), and nothing is lost or charged twice."""
from __future__ import annotations

import threading
import time
from collections import Counter

from tests.drills.serving import kill_tree, start_serve, stop_serve
from tests.drills.sms_burst import SMS_FEE, START_BALANCE, Burst, add_lines, ledger_per_key
from tests.e2e.test_serve import selfcare
from tests.peers.ports import free_port

LINES = 60
MESSAGES = 2400
CLIENTS = 16
KILL_AFTER_REPLIES = 600


def test_two_serving_trees_on_one_postgresql_share_a_burst_and_losing_one_loses_nothing(pg_url):
    selfcare(pg_url, "db", "upgrade")
    add_lines(pg_url, LINES)
    ports = [free_port(), free_port()]
    burst = Burst("twoboxes", LINES)
    boxes = [start_serve(pg_url, port, free_port(), processes=2) for port in ports]
    try:
        sender = threading.Thread(target=burst.send, args=(ports, list(range(MESSAGES)), CLIENTS))
        sender.start()
        while len(burst.charged()) < KILL_AFTER_REPLIES and sender.is_alive():
            time.sleep(0.005)
        kill_tree(boxes[1])
        sender.join(120)
        by_box = Counter(burst.replies[n][2] for n in burst.charged())
        survivors = Burst("twoboxes", LINES)
        left = sorted(set(range(MESSAGES)) - set(burst.charged()))
        survivors.send([ports[0]], left, CLIENTS)  # what the dead box did not answer, to the live one
    finally:
        for box in boxes:
            stop_serve(box)

    print(f"\nDRILL two-boxes: {MESSAGES} SMS over {CLIENTS} connections to 2 trees x 2 processes; charged "
          f"{by_box[ports[0]]} by box A, {by_box[ports[1]]} by box B before B was killed; "
          f"{len(burst.failed())} not answered, {len(burst.unavailable())} 'unavailable'; "
          f"{len(survivors.charged())} of {len(left)} re-sent charged by A")
    assert by_box[ports[0]] > 0 and by_box[ports[1]] > 0, "the two boxes did not share the load"
    assert burst.other() == [] and survivors.other() == []
    assert len(survivors.charged()) == len(left)
    per_key, problems, balances = ledger_per_key(pg_url, "twoboxes", LINES)
    assert len(per_key) == MESSAGES and set(per_key.values()) == {1}
    assert problems == []
    assert balances == [START_BALANCE - SMS_FEE * (MESSAGES // LINES)] * LINES
