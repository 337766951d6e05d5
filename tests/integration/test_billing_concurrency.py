"""Two requests for one line at once must not lose an update or charge twice: SQLite and PostgreSQL."""
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from billing import services

PRE = "+994501234567"
THREADS = 20


def open_line(core, balance="10.00"):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal(balance))


def balance(core):
    with core.uow() as uow:
        return services.balance_report(uow, PRE).balance


def run_parallel(fn, count):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(fn, range(count)))


def test_twenty_threads_charging_one_line_end_at_the_exact_balance(any_core):
    open_line(any_core)
    per_thread = 5

    def charge(i):
        for j in range(per_thread):
            with any_core.uow() as uow:
                services.charge_sms(uow, PRE, "2112", key=f"t{i}-{j}")

    run_parallel(charge, THREADS)
    assert balance(any_core) == Decimal("10.00") - Decimal("0.02") * THREADS * per_thread
    with any_core.uow() as uow:
        assert services.audit(uow) == []


def test_twenty_threads_retrying_one_request_charge_it_once(any_core):
    open_line(any_core)

    def charge(_):
        with any_core.uow() as uow:
            return services.charge_sms(uow, PRE, "2112", key="SM-same")

    results = run_parallel(charge, THREADS)
    assert sum(not r.duplicate for r in results) == 1
    assert balance(any_core) == Decimal("9.98")


def test_concurrent_top_ups_and_charges_balance_out(any_core):
    open_line(any_core, balance="0")

    def mixed(i):
        with any_core.uow() as uow:
            services.topup(uow, PRE, "1", key=f"top{i}")
        with any_core.uow() as uow:
            services.charge_call(uow, PRE, 30, "standard", key=f"call{i}")

    run_parallel(mixed, THREADS)
    assert balance(any_core) == (Decimal("1") - Decimal("0.04")) * THREADS
    with any_core.uow() as uow:
        assert services.audit(uow) == []


@pytest.mark.postgres
def test_the_schema_migrates_on_a_real_postgresql(pg_url, clock):
    from tests.conftest import make_core

    core = make_core(pg_url, clock)
    assert core.engine.dialect.name == "postgresql"
    core.upgrade_schema()  # a second upgrade is a no-op
    core.dispose()


def _charge_from_another_process(url: str, tag: str, count: int) -> None:
    from billing.clock import FixedClock
    from billing.core import Core
    from tests.conftest import START

    core = Core(url, clock=FixedClock(START))
    for n in range(count):
        with core.uow() as uow:
            services.charge_sms(uow, PRE, "2112", key=f"{tag}-{n}")
    core.dispose()


def test_processes_sharing_one_sqlite_file_queue_their_writes_without_losing_one(core):
    """`selfcare serve --processes N` on SQLite: writers of different processes meet on one file."""
    import multiprocessing

    open_line(core, balance="10.00")
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_charge_from_another_process, args=(core.db_url, f"p{i}", 40)) for i in range(3)]
    for worker in workers:
        worker.start()
    _charge_from_another_process(core.db_url, "parent", 40)
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert balance(core) == Decimal("10.00") - Decimal("0.02") * 160
    with core.uow() as uow:
        assert services.audit(uow) == []
