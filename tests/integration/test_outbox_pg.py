"""The outbox on a real PostgreSQL: two workers claiming with FOR UPDATE SKIP LOCKED never send one
message twice, and migration 0003 runs there too."""
from collections import Counter

import pytest

from billing.core import Core, make_engine
from tests.conftest import make_core
from tests.unit.outbox_support import CountingTransport, check_migration_0003, drain_in_threads, fill_outbox, rows

pytestmark = pytest.mark.postgres


def test_two_workers_on_postgresql_drain_1000_messages_each_sent_exactly_once(pg_url, clock):
    first = make_core(pg_url, clock)
    second = Core(pg_url, clock=clock)  # its own engine and pool, as another worker process has
    try:
        assert first.engine.dialect.name == "postgresql"
        keys = fill_outbox(first, 1000)
        transport = CountingTransport()

        drain_in_threads([first, second], transport)

        assert transport.sent == Counter({key: 1 for key in keys})
        assert transport.by_worker["w0"] > 0 and transport.by_worker["w1"] > 0, transport.by_worker
        left = [r for r in rows(first) if r.sent_at is None or r.claim_token is not None]
        assert left == []
    finally:
        first.dispose()
        second.dispose()


def test_migration_0003_fills_in_the_refs_of_waiting_messages_on_postgresql(pg_url):
    engine = make_engine(pg_url)
    try:
        check_migration_0003(engine)
    finally:
        engine.dispose()
