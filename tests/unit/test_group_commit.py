"""Group commit's rules on a real SQLite unit of work (the shared behaviour on PostgreSQL is in
tests/integration/test_group_commit.py)."""
import threading
import time
from decimal import Decimal

import pytest

from billing import lines, services
from billing.errors import InsufficientBalance
from billing.group_commit import GroupCommitter
from tests.unit.group_commit_support import _until, in_one_batch

PRE, POOR = "+994501234567", "+994501111111"


@pytest.fixture
def lines_open(core):
    with core.uow() as uow, uow.atomic():
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("10.00"))
        services.add_subscriber(uow, POOR, "prepaid", balance=Decimal("0.01"))
    return core


def balance(core, msisdn=PRE):
    with core.reader() as uow:
        return services.balance_report(uow, msisdn).balance


def test_a_lone_caller_runs_its_own_batch_in_its_own_thread(lines_open):
    ran_in = []

    def work(uow):
        ran_in.append(threading.get_ident())
        return services.charge_sms(uow, PRE, "2112", "k1").fee

    assert lines_open.group_commit.submit(work) == Decimal("0.02")
    assert ran_in == [threading.get_ident()]
    assert balance(lines_open) == Decimal("9.98")


def test_a_function_of_a_batch_that_opens_its_own_writer_is_refused_at_once(lines_open):
    def opens_another(uow):
        with lines_open.uow() as other:  # would wait for the write lock this batch holds
            services.charge_sms(other, PRE, "2112", "k1")

    with pytest.raises(RuntimeError, match="unit of work it is given"):
        lines_open.group_commit.submit(opens_another)
    assert lines_open.group_commit.submit(lambda uow: services.charge_sms(uow, PRE, "2112", "k2")).fee


def test_submit_from_inside_a_batch_joins_it_in_a_savepoint_of_its_own(lines_open):
    committer = lines_open.group_commit

    def outer(uow):
        services.charge_sms(uow, PRE, "2112", "outer")
        with pytest.raises(InsufficientBalance):
            committer.submit(lambda inner: services.charge_sms(inner, POOR, "2112", "inner-refused"))
        return committer.submit(lambda inner: services.charge_sms(inner, PRE, "2112", "inner-ok")).fee

    batches = committer.batches
    assert committer.submit(outer) == Decimal("0.02")
    assert committer.batches == batches + 1
    assert (balance(lines_open), balance(lines_open, POOR)) == (Decimal("9.96"), Decimal("0.01"))


def test_submit_while_holding_an_open_writer_is_refused_rather_than_deadlocked(lines_open):
    with lines_open.uow() as uow, uow.atomic():
        services.charge_sms(uow, PRE, "2112", "held")  # not committed yet: the write lock is this thread's
        with pytest.raises(RuntimeError, match="open writer"):
            lines_open.group_commit.submit(lambda other: None)
    assert lines_open.group_commit.submit(lambda uow: "free again") == "free again"


def test_objects_one_caller_loaded_are_not_seen_by_the_next_caller_of_the_batch(lines_open):
    """A stale ORM object must never decide about money the driver path has changed meanwhile."""
    outcomes = in_one_batch(lines_open, [
        lambda uow: lines.find(uow, PRE),  # the caller keeps the object (and so the session would)
        lambda uow: services.charge_sms(uow, PRE, "2112", "between"),
        lambda uow: lines.find(uow, PRE).balance_units,
    ])
    assert (outcomes[0].result.balance_units, outcomes[2].result) == (100000, 99800)


def test_a_function_that_failed_on_a_retryable_error_runs_again_in_the_next_batch(lines_open):
    class Deadlocked(Exception):
        pass

    committer = GroupCommitter(lines_open._batch_uow, retryable=lambda exc: isinstance(exc, Deadlocked))
    attempts = []

    def flaky(uow):
        attempts.append(1)
        services.charge_sms(uow, PRE, "2112", "flaky")
        if len(attempts) < 3:
            raise Deadlocked()
        return "third time"

    assert committer.submit(flaky) == "third time"
    assert len(attempts) == 3
    assert balance(lines_open) == Decimal("9.98")  # the failed attempts were undone


def test_a_retryable_error_is_given_up_after_the_last_try(lines_open):
    committer = GroupCommitter(lines_open._batch_uow, retryable=lambda exc: True, max_tries=2)
    attempts = []

    def always(uow):
        attempts.append(1)
        raise ValueError("still deadlocked")

    with pytest.raises(ValueError):
        committer.submit(always)
    assert len(attempts) == 2


def test_a_batch_never_holds_more_than_its_bound(lines_open):
    committer = GroupCommitter(lines_open._batch_uow, max_batch=2)
    gate, held = threading.Event(), threading.Event()
    sizes = []
    original = committer._run
    committer._run = lambda batch: (sizes.append(len(batch)), original(batch))[1]

    def hold(uow):
        held.set()
        gate.wait(10)

    holder = threading.Thread(target=committer.submit, args=(hold,))
    holder.start()
    held.wait(10)
    callers = [threading.Thread(target=committer.submit,
                                args=(lambda uow, n=n: services.charge_sms(uow, PRE, "2112", f"b{n}"),))
               for n in range(5)]
    for caller in callers:
        caller.start()
    while committer.waiting() < 5:
        pass
    gate.set()
    for thread in [holder, *callers]:
        thread.join(10)
    assert sizes == [1, 2, 2, 1]
    assert balance(lines_open) == Decimal("9.90")


def test_a_batch_runs_its_members_in_the_order_of_their_lines_and_those_naming_none_last(lines_open):
    ran = []

    def note(name):
        return lambda uow: ran.append(name)

    in_one_batch(lines_open, [note("503"), note("none"), note("501"), note("502-first"), note("502-second")],
                 lines=["+994503000000", None, "+994501000000", "+994502000000", "+994502000000"])
    assert ran == ["501", "502-first", "502-second", "503", "none"]


def test_answer_once_names_the_line_by_its_e164_number_and_the_key_it_recalls(lines_open, monkeypatch):
    named = []
    committer = lines_open.group_commit
    submit = committer.submit
    monkeypatch.setattr(committer, "submit",
                        lambda fn, line=None, key=None: (named.append((line, key)), submit(fn, line, key))[1])
    services.answer_once(lines_open, "k-1", lambda uow: {"text": "a"}, line="0501234567")
    services.answer_once(lines_open, "k-2", lambda uow: {"text": "b"}, line="not a number")
    services.answer_once(lines_open, "k-3", lambda uow: {"text": "c"})
    assert named == [("+994501234567", "k-1"), (None, "k-2"), (None, "k-3")]


def _sizes(committer) -> list[int]:
    sizes = []
    run = committer._run
    committer._run = lambda batch: (sizes.append(len(batch)), run(batch))[1]
    return sizes


def _charge(n):
    return lambda uow: services.charge_sms(uow, PRE, "2112", f"again-{n}")


def _two_answered_in_one_batch(committer) -> None:
    gate, held = threading.Event(), threading.Event()
    holder = threading.Thread(target=committer.submit, args=(lambda uow: (held.set(), gate.wait(10)),))
    holder.start()
    assert held.wait(10)
    callers = [threading.Thread(target=committer.submit, args=(_charge(n),)) for n in (1, 2)]
    for caller in callers:
        caller.start()
    _until(lambda: committer.waiting() == 2, "two callers to queue behind the holder")
    gate.set()
    for thread in [holder, *callers]:
        thread.join(10)
        assert not thread.is_alive()


def test_a_batch_that_answered_several_callers_waits_for_them_to_come_back_before_the_next(lines_open):
    committer = lines_open.group_commit
    committer.linger_s = 60  # nothing but their coming back can start the next batch
    _two_answered_in_one_batch(committer)
    sizes = _sizes(committer)
    again = [threading.Thread(target=committer.submit, args=(_charge(n),)) for n in (3, 4)]
    again[0].start()
    _until(lambda: committer.waiting() == 1, "the first caller back to wait for the second")
    again[1].start()
    for thread in again:
        thread.join(10)
        assert not thread.is_alive()
    assert sizes == [2]
    assert balance(lines_open) == Decimal("9.92")


def test_callers_that_do_not_come_back_hold_the_next_batch_no_longer_than_its_linger(lines_open):
    committer = lines_open.group_commit
    committer.linger_s = 0.05
    _two_answered_in_one_batch(committer)
    sizes = _sizes(committer)
    started = time.monotonic()
    assert committer.submit(_charge(3)).fee == Decimal("0.02")
    assert time.monotonic() - started >= 0.05  # it waited for the other caller, then went alone
    assert sizes == [1]
    assert balance(lines_open) == Decimal("9.94")


def test_a_lone_caller_waits_for_nobody(lines_open):
    committer = lines_open.group_commit
    committer.linger_s = 60
    sizes = _sizes(committer)
    for n in range(3):
        committer.submit(_charge(n))
    assert sizes == [1, 1, 1]
