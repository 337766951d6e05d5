"""Group commit on SQLite and a real PostgreSQL: concurrent charges share a transaction and a commit,
each in its own savepoint, and nobody hears "done" before the commit is."""
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing import services
from billing.errors import InsufficientBalance
from billing.models import Operation
from tests.unit.group_commit_support import in_one_batch

RICH, POOR, OTHER = "+994501234567", "+994501111111", "+994502222222"
THREADS = 20


def open_lines(core):
    with core.uow() as uow, uow.atomic():
        services.add_subscriber(uow, RICH, "prepaid", balance=Decimal("10.00"))
        services.add_subscriber(uow, POOR, "prepaid", balance=Decimal("0.01"))
        services.add_subscriber(uow, OTHER, "prepaid", balance=Decimal("5.00"))


def balance(core, msisdn):
    with core.reader() as uow:
        return services.balance_report(uow, msisdn).balance


def keys_kept(core, *keys):
    """Which of these idempotency keys another connection sees committed."""
    with core.reader() as uow:
        return set(uow.session.scalars(select(Operation.key).where(Operation.key.in_(keys))))


def charge(msisdn, key):
    return lambda uow: services.charge_sms(uow, msisdn, "2112", key)


def assert_audit_clean(core):
    with core.reader() as uow:
        assert services.audit(uow) == []


def test_twenty_threads_charging_one_line_through_group_commit_end_at_the_exact_balance(any_core):
    open_lines(any_core)
    per_thread = 5
    seen_committed = []

    def caller(i):
        for j in range(per_thread):
            key = f"t{i}-{j}"
            result = any_core.group_commit.submit(charge(RICH, key))
            assert not result.duplicate
            # Back from submit means committed: another connection already sees it.
            seen_committed.append(bool(keys_kept(any_core, key)))

    batches_before = any_core.group_commit.batches
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(caller, range(THREADS)))
    assert balance(any_core, RICH) == Decimal("10.00") - Decimal("0.02") * THREADS * per_thread
    assert all(seen_committed) and len(seen_committed) == THREADS * per_thread
    assert any_core.group_commit.batches - batches_before < THREADS * per_thread  # some shared a commit
    assert_audit_clean(any_core)


def lines_of_two_lanes(committer, count=4) -> list[str]:
    """Numbers of new prepaid lines, half of them in each of the committer's two lanes."""
    by_lane = {0: [], 1: []}
    for n in range(1000):
        number = f"+99455{n:07d}"
        lane = hash(number) % 2
        if len(by_lane[lane]) < count // 2:
            by_lane[lane].append(number)
    return by_lane[0] + by_lane[1]


def test_twenty_threads_charging_lines_of_two_lanes_end_at_the_exact_balances(any_core):
    committer = any_core.group_commit
    committer.set_lanes(2)  # SQLite's two lanes take turns at its one write lock: slower, still exact
    numbers = lines_of_two_lanes(committer)
    with any_core.uow() as uow, uow.atomic():
        for number in numbers:
            services.add_subscriber(uow, number, "prepaid", balance=Decimal("10.00"))
    per_thread = 8

    def caller(i):
        for j in range(per_thread):
            number = numbers[(i + j) % len(numbers)]
            assert not committer.submit(charge(number, f"l{i}-{j}"), number).duplicate

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(caller, range(THREADS)))
    charges_each = THREADS * per_thread // len(numbers)
    assert [balance(any_core, number) for number in numbers] == [Decimal("10.00") - Decimal("0.02") * charges_each] * 4
    assert_audit_clean(any_core)


@pytest.mark.postgres
def test_a_batch_held_open_in_one_lane_does_not_hold_the_other_lane(two_cores):
    import threading

    from tests.unit.group_commit_support import _until

    any_core = two_cores[0]
    committer = any_core.group_commit
    committer.set_lanes(2)  # as a serving process alone on two cores runs (selfcare.serve.batch_lanes)
    first, second = lines_of_two_lanes(committer, 2)
    with any_core.uow() as uow, uow.atomic():
        for number in (first, second):
            services.add_subscriber(uow, number, "prepaid", balance=Decimal("10.00"))
    gate, held = threading.Event(), threading.Event()

    def hold(uow):
        services.charge_sms(uow, first, "2112", "held")
        held.set()
        assert gate.wait(10)

    holder = threading.Thread(target=committer.submit, args=(hold, first))
    holder.start()
    try:
        assert held.wait(10)
        # The other lane's batch runs and commits while the first lane's is still open.
        assert committer.submit(charge(second, "beside"), second).fee == Decimal("0.02")
        assert keys_kept(any_core, "held", "beside") == {"beside"}
    finally:
        gate.set()
        holder.join(10)
    _until(lambda: keys_kept(any_core, "held") == {"held"}, "the held batch to commit")
    assert_audit_clean(any_core)


def _charge_from_another_process(url: str, tag: str, count: int) -> None:
    from billing.clock import FixedClock
    from billing.core import Core
    from tests.conftest import START

    core = Core(url, clock=FixedClock(START))
    with ThreadPoolExecutor(4) as pool:  # several callers per process, so batches form in each
        list(pool.map(lambda n: core.group_commit.submit(charge(RICH, f"{tag}-{n}")), range(count)))
    core.dispose()


def test_four_processes_charging_one_line_through_group_commit_end_at_the_exact_balance(any_core):
    open_lines(any_core)
    any_core.dispose()  # no pooled connection of this process is handed to the children
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_charge_from_another_process, args=(any_core.db_url, f"p{i}", 40))
               for i in range(3)]
    for worker in workers:
        worker.start()
    _charge_from_another_process(any_core.db_url, "parent", 40)
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert balance(any_core, RICH) == Decimal("10.00") - Decimal("0.02") * 160
    assert_audit_clean(any_core)


def test_a_refused_charge_in_a_batch_leaves_the_others_committed(any_core):
    open_lines(any_core)
    with any_core.uow() as uow:
        services.charge_sms(uow, OTHER, "2112", key="paid-before")

    def charge_then_reuse_a_key(uow):
        # Work first, then a duplicate key at the database: the whole step must be undone.
        services.charge_sms(uow, OTHER, "2112", key="undone")
        uow.session.add(Operation(key="paid-before", kind="test", created_at=uow.clock.now()))
        uow.session.flush()

    def core_statement_first_then_fails(uow):
        # Its first statement is SQLAlchemy's, not the driver's: it must still land in its savepoint.
        uow.connection().exec_driver_sql(f"UPDATE subscriber SET language = 'ru' WHERE msisdn = '{OTHER}'")
        raise ZeroDivisionError("refused after writing")

    outcomes = in_one_batch(any_core, [
        charge(RICH, "ok-1"),
        charge(POOR, "too-poor"),
        charge_then_reuse_a_key,
        core_statement_first_then_fails,
        charge(OTHER, "paid-before"),  # a retry of a request already paid
        charge(RICH, "ok-2"),
    ])
    ok_1, too_poor, reused, failed, retry, ok_2 = outcomes
    assert isinstance(failed.error, ZeroDivisionError)
    with any_core.reader() as uow:
        assert services.balance_report(uow, OTHER).language == "az"
    assert ok_1.error is None and ok_2.error is None
    assert (ok_1.result.fee, ok_1.result.duplicate) == (Decimal("0.02"), False)
    assert isinstance(too_poor.error, InsufficientBalance)
    assert isinstance(reused.error, IntegrityError)
    assert retry.error is None and retry.result.duplicate and retry.result.fee == Decimal("0.02")
    assert balance(any_core, RICH) == Decimal("9.96")
    assert balance(any_core, POOR) == Decimal("0.01")
    assert balance(any_core, OTHER) == Decimal("4.98")  # only the charge made before the batch
    assert keys_kept(any_core, "ok-1", "ok-2", "too-poor", "undone") == {"ok-1", "ok-2"}
    assert_audit_clean(any_core)
    # The batch ran without savepoints first, then again with them for the two members that wrote
    # before failing (on both databases).
    assert any_core.group_commit.redone == 1


def test_refusals_before_anything_is_written_need_no_savepoint(any_core):
    open_lines(any_core)
    outcomes = in_one_batch(any_core, [charge(RICH, "r1"), charge(POOR, "r-poor"), charge("+994509999999", "r-unknown"),
                                       charge(OTHER, "r2")])
    assert [type(outcome.error).__name__ for outcome in outcomes] == [
        "NoneType", "InsufficientBalance", "UnknownSubscriber", "NoneType"]
    assert any_core.group_commit.redone == 0
    assert (balance(any_core, RICH), balance(any_core, POOR), balance(any_core, OTHER)) == (
        Decimal("9.98"), Decimal("0.01"), Decimal("4.98"))
    assert keys_kept(any_core, "r1", "r2", "r-poor", "r-unknown") == {"r1", "r2"}
    assert_audit_clean(any_core)


def test_when_the_commit_fails_every_caller_of_the_batch_gets_the_error_and_nothing_is_kept(any_core):
    open_lines(any_core)
    with any_core.uow() as uow:
        # Checked only at COMMIT, on both databases: the batch's statements all succeed, its commit not.
        uow.connection().exec_driver_sql(
            "CREATE TABLE commit_check (line_id INTEGER REFERENCES subscriber (id) DEFERRABLE INITIALLY DEFERRED)")
        uow.commit()

    def breaks_the_commit(uow):
        uow.connection().exec_driver_sql("INSERT INTO commit_check (line_id) VALUES (-1)")
        return "looked fine"

    outcomes = in_one_batch(any_core, [charge(RICH, "c1"), breaks_the_commit, charge(OTHER, "c2"),
                                        charge(POOR, "refused-anyway")])
    assert all(isinstance(outcome.error, IntegrityError) for outcome in outcomes), outcomes
    assert all(outcome.result is None for outcome in outcomes)
    assert (balance(any_core, RICH), balance(any_core, OTHER)) == (Decimal("10.00"), Decimal("5.00"))
    assert keys_kept(any_core, "c1", "c2") == set()
    # The committer goes on: the next batch commits.
    assert any_core.group_commit.submit(charge(RICH, "after")).fee == Decimal("0.02")
    assert balance(any_core, RICH) == Decimal("9.98")
    assert_audit_clean(any_core)


def test_twins_of_one_request_in_one_batch_are_answered_once(any_core):
    open_lines(any_core)
    runs = []

    def compute(uow):
        runs.append(1)
        fee = services.charge_sms(uow, RICH, "2112", key="sms-1").fee
        return {"text": f"fee {fee}"}

    twins = [lambda uow: services.answer_once(any_core, "sms-1", compute)] * 3
    outcomes = in_one_batch(any_core, twins)
    assert [o.result for o in outcomes] == [({"text": "fee 0.0200"}, False)] + [({"text": "fee 0.0200"}, True)] * 2
    assert runs == [1]
    assert balance(any_core, RICH) == Decimal("9.98")


@pytest.mark.parametrize("threads", [8])
def test_answers_kept_through_group_commit_match_the_charges(any_core, threads):
    open_lines(any_core)

    def caller(i):
        return services.answer_once(
            any_core, f"req-{i % 10}",
            lambda uow: {"fee": str(services.charge_sms(uow, RICH, "2112", key=f"req-{i % 10}").fee)})

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(caller, range(40)))
    assert sum(not from_memory for _, from_memory in results) == 10
    assert balance(any_core, RICH) == Decimal("10.00") - Decimal("0.02") * 10
    assert_audit_clean(any_core)


@pytest.fixture
def two_cores(pg_url, clock):
    """Two cores on one PostgreSQL database, the lines open: two serving processes."""
    from billing.core import Core

    first = Core(pg_url, clock=clock)
    first.upgrade_schema()
    open_lines(first)
    second = Core(pg_url, clock=clock)
    yield first, second
    first.dispose()
    second.dispose()


@pytest.mark.postgres
def test_batches_of_two_processes_charging_two_lines_in_opposite_orders_do_not_deadlock(two_cores):
    # Two cores on one database are two serving processes. Each batch's first member, once it has
    # charged (and so locked) its line, waits up to a second for the other batch's first member to
    # have charged too. Run in the order they came (RICH then OTHER here, OTHER then RICH there),
    # both would pass that wait holding one line each and then wait for each other: a deadlock.
    # In line order, the second batch's first member waits on the first batch's lock instead.
    import threading

    first, second = two_cores
    both_locked = threading.Barrier(2, timeout=1.0)

    def batch_of(core, order, tag):
        waited = []

        def step(msisdn, n):
            def fn(uow):
                result = services.charge_sms(uow, msisdn, "2112", f"{tag}-{n}")
                if not waited:
                    waited.append(msisdn)
                    try:
                        both_locked.wait()
                    except threading.BrokenBarrierError:
                        pass
                return result
            return fn
        return lambda: in_one_batch(core, [step(m, n) for n, m in enumerate(order)], lines=order)

    results = {}
    runs = [threading.Thread(target=lambda name=name, run=run: results.__setitem__(name, run()))
            for name, run in (("first", batch_of(first, [RICH, OTHER], "a")),
                              ("second", batch_of(second, [OTHER, RICH], "b")))]
    for run in runs:
        run.start()
    for run in runs:
        run.join(30)
    assert all(o.error is None for outcomes in results.values() for o in outcomes)
    assert first.group_commit.retries + second.group_commit.retries == 0  # no deadlock was broken
    assert balance(first, RICH) == Decimal("9.96")
    assert balance(first, OTHER) == Decimal("4.96")
    assert_audit_clean(first)


@pytest.mark.postgres
def test_a_member_whose_line_another_transaction_holds_waits_for_a_later_batch_not_the_others(two_cores):
    # Another process's batch holds RICH's row. Waiting for it would hold OTHER's charge (and its
    # row lock) until that batch commits; instead OTHER commits now and RICH follows once it is free.
    import threading

    from billing import lines
    from tests.unit.group_commit_support import _until

    core, elsewhere = two_cores
    locked, release = threading.Event(), threading.Event()

    def hold_rich():
        with elsewhere.uow() as uow:
            lines.snapshot(uow, RICH, lock=True)
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_rich)
    holder.start()
    try:
        assert locked.wait(10)
        committer, gate, held = core.group_commit, threading.Event(), threading.Event()
        committer.set_lanes(1)  # the two callers below must meet in one batch

        def first_batch(uow):  # holds the committer so that the next two queue into one batch
            held.set()
            gate.wait(10)

        results = {}

        def call(msisdn, key):
            results[key] = committer.submit(charge(msisdn, key), msisdn)

        opener = threading.Thread(target=committer.submit, args=(first_batch,))
        opener.start()
        assert held.wait(10)
        callers = [threading.Thread(target=call, args=args) for args in ((RICH, "held-line"), (OTHER, "free-line"))]
        for n, caller in enumerate(callers, start=1):
            caller.start()
            _until(lambda n=n: committer.waiting() == n, "the callers to queue")
        gate.set()
        _until(lambda: "free-line" in results, "the charge of the free line")
        assert keys_kept(core, "free-line", "held-line") == {"free-line"}  # committed while RICH is held
        assert committer.skips >= 1
        release.set()
        for caller in callers:
            caller.join(30)
        assert results["held-line"].fee == Decimal("0.02")
        assert (balance(core, RICH), balance(core, OTHER)) == (Decimal("9.98"), Decimal("4.98"))
        assert_audit_clean(core)
    finally:
        release.set()
        holder.join(10)
