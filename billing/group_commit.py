"""Group commit: the concurrent writes of one process share one transaction and one commit.

A commit is the dearest part of a short write (PostgreSQL flushes its WAL to disk; SQLite writers
queue for the one write lock and each pays for its own BEGIN and COMMIT). Callers hand a function
of a unit of work to `GroupCommitter.submit` and wait. The first caller to find nobody running a
batch runs one: the queued functions (at most `max_batch`), each in a savepoint of its own, then
one commit; then it wakes every caller with its own result or exception. A function that raises
(insufficient balance, a duplicate key, any error) has its savepoint rolled back and gets its
exception; the others are kept. If the commit itself fails, every caller of the batch gets that
error and nothing of the batch is kept: no caller hears "done" before its work is durable.

Members of a batch run in the order of the line each one names (`submit(fn, line=…)`), not in the
order they came: every batch of every process then locks the lines it charges in one order, so two
batches never wait for each other in a cycle. On PostgreSQL such a cycle is a deadlock, and finding
one costs `deadlock_timeout` (1 s by default) during which both batches and everyone queued behind
them wait; with a few hundred busy lines and several serving processes that happened several times
in every burst of 5,000 SMS (bench/README.md).

Batches form on their own: whoever arrives while a batch runs waits for the next one, which the
finished batch's runner hands to the first of them (so no caller runs more than its own batch and
retries of it). One caller alone switches no thread and waits for nobody: it pays no more than a
commit of its own. A batch that answered several callers lets the next one wait for them to come
back with their next work, at most `linger_s` (PostgreSQL's `commit_delay`, which also waits only
when other transactions are about): without it, the callers just woken ran their Python while the
next batch ran, and every pass of the GIL between them and the runner, on two cores, woke a
sleeping thread on the other one; with it, the batch runs alone, twice as big (bench/README.md).

A batch (as `Core` makes them) first runs with its savepoints elided (none sent; on PostgreSQL a
subtransaction a member cost the server more than the member's own statements, on SQLite they were
two of a member's statements): a refusal that comes before anything is
written needs no undo, and when a member that wrote must be undone, the transaction is rolled back
and the batch run again with savepoints, unseen by its callers. A committer may also run lanes,
queues whose batches run side by side on their own connections, each member in its line's lane.

A function run in a batch must use the unit of work it is given: opening its own writer unit of
work there would wait for the SQLite write lock this batch holds (`Core.uow()` refuses it), and a
`submit` from inside a batch runs at once in a nested savepoint of the same batch.
"""
from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import weakref
from collections import deque
from contextlib import nullcontext
from typing import Callable, TypeVar

from .uow import HeldWriteRefused, open_writer_transactions

T = TypeVar("T")
log = logging.getLogger("billing.group_commit")

DEFAULT_MAX_BATCH = 64
DEFAULT_LINGER_S = 0.001  # what a batch waits, at most, for the callers the one before answered
MAX_SKIPS = 2  # batches a member may be left out of because its line was busy elsewhere


class _Ticket:
    """One caller's function, and what became of it."""

    __slots__ = ("fn", "line", "key", "context", "result", "error", "done", "lead", "tries", "skipped", "_wake")

    def __init__(self, fn, line: str | None, key: str | None):
        self.fn = fn
        self.line = line
        self.key = key
        # The caller's context variables (its request id in the logs), whichever thread runs the batch.
        self.context = contextvars.copy_context()
        self.result = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False  # handed the next batch to run instead of a result
        self.tries = 0
        self.skipped = 0  # batches it was left out of: its line was locked by another process's
        self._wake = threading.Lock()
        self._wake.acquire()

    def wait(self) -> None:
        self._wake.acquire()

    def wake(self) -> None:
        self._wake.release()

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result


_COMMITTERS: "weakref.WeakSet[GroupCommitter]" = weakref.WeakSet()


class GroupCommitter:
    """One per database and process (`Core.group_commit`).

    `open_uow` opens the batch's unit of work; `retryable(exc)` says whether a function that failed
    may run again in the next batch (a deadlock another process's transaction caused), at most
    `max_tries` times; `linger_s`: how long a batch may wait for the callers the one before it
    answered (0: never). `on_batch(seconds, members)`, when set, hears how long each batch took from
    BEGIN to COMMIT (selfcare.metrics sets it; billing does not know who listens).
    """

    def __init__(self, open_uow: Callable[[], object], *, max_batch: int = DEFAULT_MAX_BATCH,
                 retryable: Callable[[BaseException], bool] = lambda exc: False, max_tries: int = 3,
                 take_lines: Callable[[object, list[tuple[str, str | None]]], set[str]] | None = None,
                 elide_savepoints: bool = False, lanes: int = 1, linger_s: float = DEFAULT_LINGER_S):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if linger_s < 0:
            raise ValueError("linger_s must not be negative")
        self.linger_s = linger_s
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        # Lanes: queues whose batches run side by side, each on its own connection, a member in the
        # lane of its line (PostgreSQL: while one batch waits for the server, another's Python runs).
        self.lanes = lanes
        self._open_uow = open_uow
        # take_lines(uow, [(line, key), ...]): lock those of the lines no other transaction holds,
        # without waiting, and name the ones held elsewhere (none where one writer runs at a time:
        # SQLite). It may read ahead what the members will read first (their lines, the answers
        # kept for their keys).
        self._take_lines = take_lines
        # Batches first run with their savepoints elided (billing.driver_sql), and again with them
        # only when a member that wrote has to be undone.
        self._elide = elide_savepoints
        self.max_batch = max_batch
        self._retryable = retryable
        self._max_tries = max_tries
        self.batches = 0  # how many batches ran, functions in all, and runs again: for tests and benchmarks
        self.members = 0
        self.retries = 0
        self.skips = 0  # members left for a later batch because another process held their line
        self.redone = 0  # batches run again with savepoints: a member that wrote had to be undone
        self.on_batch: Callable[[float, int], None] | None = None
        self._reset()
        _COMMITTERS.add(self)

    def _reset(self) -> None:
        self._local = threading.local()  # .uow: the batch this thread is running
        self._lanes = [_Lane() for _ in range(self.lanes)]
        self._counting = threading.Lock()  # the figures below, counted by the lanes' runners

    def set_lanes(self, lanes: int) -> None:
        """Run this many lanes from now on; only while no batch runs or waits."""
        if lanes < 1:
            raise ValueError("lanes must be at least 1")
        if any(lane.running or lane.queue for lane in self._lanes):
            raise RuntimeError("set_lanes() while batches run")
        self.lanes = lanes
        self._reset()

    def waiting(self) -> int:
        """How many callers wait for a batch to start."""
        return sum(len(lane.queue) for lane in self._lanes)

    def running_here(self) -> bool:
        """True inside a function that this thread runs as part of a batch."""
        return getattr(self._local, "uow", None) is not None

    def submit(self, fn: Callable[[object], T], line: str | None = None, key: str | None = None) -> T:
        """Run `fn(uow)` in the next batch; its result (or exception) once the batch has committed.
        `line` names the first row `fn` locks (the E.164 number of the line it charges): the batch
        runs its members in that order, those that name none last. `key`: the idempotency key whose
        kept answer `fn` recalls first (`services.answer_once`), read with the batch's lines."""
        uow = getattr(self._local, "uow", None)
        if uow is not None:  # called by a function of a batch: part of that caller's work
            with uow.atomic():
                return fn(uow)
        if open_writer_transactions():
            # Its open transaction may hold what the batch needs (a row lock, SQLite's write lock),
            # and the batch would wait for it while it waits for the batch.
            raise RuntimeError("submit() while holding an open writer unit of work: commit or leave it first")
        ticket = _Ticket(fn, line, key)
        lanes = self._lanes
        lane = lanes[hash(line) % len(lanes)] if line is not None and len(lanes) > 1 else lanes[0]
        with lane.mutex:
            lane.queue.append(ticket)
            lead = not lane.running
            lane.running = True
            if lane.returning:
                lane.returning -= 1
                if not lane.returning:
                    lane.back.notify()
        if not lead:
            ticket.wait()
            if not ticket.lead:
                return ticket.outcome()
        self._lead(ticket, lane)
        return ticket.outcome()

    def _lead(self, mine: _Ticket, lane: "_Lane") -> None:
        """Run batches of `lane` until `mine` is done, then hand its queue to its first caller (or stop)."""
        queue = lane.queue
        while not mine.done:  # more than once only when it is retried or its line was busy elsewhere
            with lane.mutex:
                if lane.returning:
                    lane.back.wait_for(lambda: not lane.returning, self.linger_s)
                    lane.returning = 0  # those not back yet come to a later batch
                batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
            batch.sort(key=_lock_order)  # stable: twins of one request keep the order they came in
            try:
                self._run(batch)
            finally:
                again = [ticket for ticket in batch if not ticket.done]  # first in the next batch
                following = None
                with lane.mutex:
                    queue.extendleft(reversed(again))
                    answered = len(batch) - len(again)
                    lane.returning = answered if answered > 1 and self.linger_s else 0
                    if not queue:
                        lane.running = False
                    elif mine.done:
                        following = queue[0]
                        following.lead = True
                # The next batch first: the callers woken below queue for the one after it.
                if following is not None:
                    following.wake()
                for ticket in batch:
                    if ticket.done and ticket is not mine:
                        ticket.wake()

    def _run(self, batch: list[_Ticket]) -> None:
        started = time.perf_counter()
        with self._counting:
            self.batches += 1
        redone = retried = 0
        try:
            members = self._run_batch(batch, elide=self._elide and len(batch) > 1)
        except _RunAgain:
            redone = 1
            members = self._run_batch(batch, elide=False)
        if members is not None:
            if self.on_batch is not None:
                self.on_batch(time.perf_counter() - started, len(members))
            for ticket in members:
                if ticket.error is not None and ticket.tries < self._max_tries and self._retryable(ticket.error):
                    ticket.error = None  # runs again in the next batch
                    retried += 1
                    continue
                ticket.done = True
        with self._counting:
            self.members += len(members) if members is not None else 0
            self.redone += redone
            self.retries += retried

    def _run_batch(self, batch: list[_Ticket], *, elide: bool) -> list[_Ticket] | None:
        """One transaction for the members of `batch` free to run; they, once it has committed.
        With `elide`, its savepoints are not sent (`UnitOfWork.elide_savepoints`): when a member (or
        a block inside one) that wrote has to be undone, `_RunAgain` says to run the batch again
        with them. Nobody has heard an outcome before the commit, so running it again is unseen."""
        members = batch
        tries = [ticket.tries for ticket in batch]
        try:
            with self._open_uow() as uow:
                if elide:
                    uow.elide_savepoints()
                self._local.uow = uow
                try:
                    members = self._free_to_run(uow, batch)
                    alone = len(members) == 1  # then its own transaction is its savepoint
                    with nullcontext() if alone else uow.atomic():
                        for ticket in members:
                            self._run_one(uow, ticket, uow.atomic if alone else uow.isolated)
                            if uow.needs_savepoints:
                                raise _RunAgain()
                finally:
                    self._local.uow = None
        except (_RunAgain, HeldWriteRefused) as exc:  # a held claim found its key taken: at the commit
            for ticket, tried in zip(batch, tries):
                ticket.result, ticket.error, ticket.tries = None, None, tried
            raise _RunAgain() from exc
        except BaseException as exc:
            self._failed(members, exc)
            if not isinstance(exc, Exception):
                raise
            return None
        return members

    @staticmethod
    def _failed(members: list[_Ticket], exc: BaseException) -> None:
        """The transaction could not commit: nothing of the batch is kept, so nobody's work is done."""
        log.warning("group commit of %d failed: %s", len(members), exc)
        for ticket in members:
            ticket.result, ticket.error = None, exc
            ticket.done = True

    def _free_to_run(self, uow, batch: list[_Ticket]) -> list[_Ticket]:
        """The members of `batch` to run now: those whose line another process's batch holds wait
        for a later batch instead of holding this one (and every line it locked) until that batch
        commits. A member left out twice runs and waits, so none waits for ever; and when none of
        the batch could run, it runs whole, holding no line while it waits."""
        if self._take_lines is None or len(batch) < 2:
            return batch
        wanted = [(ticket.line, ticket.key) for ticket in batch if ticket.line is not None]
        if not wanted:
            return batch
        busy = self._take_lines(uow, wanted)
        members, later = [], []
        for ticket in batch:
            (later if ticket.line in busy and ticket.skipped < MAX_SKIPS else members).append(ticket)
        if not later or not members:
            return batch
        for ticket in later:
            ticket.skipped += 1
        with self._counting:
            self.skips += len(later)
        return members

    @staticmethod
    def _run_one(uow, ticket: _Ticket, savepoint) -> None:
        ticket.tries += 1
        try:
            with savepoint():
                ticket.result = ticket.context.run(ticket.fn, uow)
        except Exception as exc:  # undone by its savepoint; the others go on
            ticket.result, ticket.error = None, exc


class _Lane:
    """One queue of callers, whether one of them runs (or was handed) its batch, and how many of the
    callers the last batch answered have not submitted again (`back` is told when none is left)."""

    __slots__ = ("mutex", "queue", "running", "returning", "back")

    def __init__(self):
        self.mutex = threading.Lock()
        self.queue: deque[_Ticket] = deque()
        self.running = False
        self.returning = 0
        self.back = threading.Condition(self.mutex)


class _RunAgain(Exception):
    """The batch's transaction elided its savepoints and one had to be undone."""


def _lock_order(ticket: _Ticket) -> tuple[bool, str]:
    return ticket.line is None, ticket.line or ""


def _after_fork_in_child() -> None:
    # The batches of the parent's threads do not run here: start from nothing.
    for committer in list(_COMMITTERS):
        committer._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
