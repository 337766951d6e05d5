"""Callers that land in one group-commit batch, for tests that need to know which work shared a
transaction: a first caller holds its own batch open until all the others are queued behind it."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class Outcome:
    result: object = None
    error: BaseException | None = None


def _until(condition, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def in_one_batch(core, functions, lines=None, keys=None) -> list[Outcome]:
    """Submit every function from its own thread, in the order given, so that they all run in one
    batch (one transaction, one commit); each caller's result or exception, in order. `lines[i]` and
    `keys[i]` are the line and the key that function i names to group commit (as `answer_once`
    names them; none when not given). A batch is one lane's: the committer runs one lane meanwhile."""
    lines = lines or [None] * len(functions)
    keys = keys or [None] * len(functions)
    committer = core.group_commit
    lanes = committer.lanes
    committer.set_lanes(1)
    try:
        return _in_one_batch(committer, functions, lines, keys)
    finally:
        committer.set_lanes(lanes)


def _in_one_batch(committer, functions, lines, keys) -> list[Outcome]:
    gate, held = threading.Event(), threading.Event()

    def hold(uow):
        held.set()
        assert gate.wait(10), "the gate was never opened"

    outcomes = [Outcome() for _ in functions]

    def call(index, fn):
        try:
            outcomes[index].result = committer.submit(fn, lines[index], keys[index])
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcomes[index].error = exc

    holder = threading.Thread(target=committer.submit, args=(hold,))
    holder.start()
    assert held.wait(10), "the holding batch never started"
    batches_before = committer.batches
    callers = [threading.Thread(target=call, args=(i, fn)) for i, fn in enumerate(functions)]
    for queued, caller in enumerate(callers, start=1):
        caller.start()  # one at a time: they queue in the order given
        _until(lambda: committer.waiting() == queued, f"caller {queued} to queue")
    gate.set()
    holder.join(10)
    for caller in callers:
        caller.join(30)
        assert not caller.is_alive(), "a caller never got its answer"
    assert committer.batches == batches_before + 1, "the callers did not share one batch"
    return outcomes
