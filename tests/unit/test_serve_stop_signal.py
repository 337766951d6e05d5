"""The serving tree's stop can be signalled while its main thread holds the lock of the Event it
waits on (Granian sets that Event from its SIGTERM handler; selfcare.serve.SignalSafeEvent)."""
import signal

from selfcare.serve import SignalSafeEvent, _granian_tree


def test_a_signal_handler_sets_it_while_its_own_thread_holds_its_lock():
    event = SignalSafeEvent()
    previous = signal.signal(signal.SIGUSR1, lambda *_: event.set())
    try:
        with event._cond:  # where the main thread is when it leaves Event.wait
            assert event._cond.acquire(blocking=False), "the lock is not re-entrant: set() would wait for ever"
            event._cond.release()
            signal.raise_signal(signal.SIGUSR1)  # the handler runs here, in this very thread
        assert event.is_set()
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_the_serving_tree_waits_on_such_an_event():
    tree = _granian_tree()("selfcare.http:app_from_env", workers=1)
    assert isinstance(tree.main_loop_interrupt, SignalSafeEvent)
