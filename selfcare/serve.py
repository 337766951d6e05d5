"""One process tree: N serving processes (HTTP under Granian and FastAGI each) and the worker.

The parent is Granian's supervisor (`granian.server.mp.MPServer`) with the worker thread beside it.
It forks N serving processes (default: one per core on SQLite, two on PostgreSQL); in each, Granian's Rust runtime owns the
HTTP connections (accepting, keep-alive, parsing: no Python loop walks them) and hands each
request to a few Python threads running the Flask app, and an asyncio loop serves FastAGI
(ivr.fastagi). Both ports are shared by the N processes with SO_REUSEPORT, so the kernel spreads
connections and calls over them and every core runs Python despite the GIL. Workers keep no
state, so this is the same story as more boxes (docs/architecture.md).

Stopping (SIGTERM or SIGINT to the parent): the worker thread stops, Granian sends SIGTERM to each
serving process, which stops accepting, lets the requests in hand finish (their charges commit or
roll back whole), cuts the calls in progress, and exits; the parent waits for them. A serving
process that dies takes the tree down loudly (exit 1) rather than leaving it half-served: the
process manager restarts the whole tree.
"""
from __future__ import annotations

import copy
import glob
import logging
import multiprocessing.util
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from functools import partial
from logging.handlers import QueueHandler, QueueListener

from billing.core import Core
from selfcare import logs
from selfcare.config import Settings, check_can_listen

log = logging.getLogger("selfcare.serve")

# Python threads per serving process running the Flask app (Granian's "blocking threads"), and
# serving processes per core; the connections themselves are Granian's, in Rust, however many
# Kannel keeps open. Measured through a real Kannel on the group-commit charge path
# (bench/README.md): 2 processes × 16 threads on both databases. On SQLite, now that a batch's
# fees are made together (2026-12-03): 1,231–1,576 SMS/s against 927–1,276/s with × 4, 972–1,402/s
# × 8, 1,370–1,375/s × 24, 1,197–1,432/s for 1 × 16 (the processes queue for the one write lock,
# each batch pays for its BEGIN, read ahead and commit). On PostgreSQL, with four statements a
# charged SMS, 1,439–1,536/s (2 × 8 1,197–1,427/s, 2 × 24 1,403–1,604/s, 2 × 32 1,354–1,375/s,
# 3 × 8 1,283–1,459/s, 4 × 8 1,311–1,320/s, 1 × 32 1,138–1,228/s): more threads a process make
# bigger batches (fewer commits, pings and checkouts a charge), one process a core keeps both
# CPUs busy.
HTTP_THREADS = 16
PROCESSES_PER_CORE_SQLITE = 1
PROCESSES_PER_CORE_POSTGRESQL = 1


def http_threads() -> int:
    """$SELFCARE_HTTP_THREADS, or the measured best (the same on both databases)."""
    configured = os.environ.get("SELFCARE_HTTP_THREADS")
    if configured:
        return max(1, int(configured))
    return HTTP_THREADS


# Granian's backpressure counts connections, not requests: each process must take the whole of
# Kannel's keep-alive pool (max-pending-requests, 512 by default) or Kannel's requests fail.
HTTP_CONNECTION_LIMIT = 2048
HTTP_BACKLOG = 2048
LOG_LEVEL = os.environ.get("SELFCARE_LOG_LEVEL", "INFO").upper()  # INFO: a line per decision
STOP_TIMEOUT_S = 20  # a serving process still running then is killed
READY_TIMEOUT_S = 60

# Granian logs through `_granian` to stdout by default; stdout carries our ready line, so its
# records go to the root logger (stderr, numbers masked) like ours. No access log.
GRANIAN_LOGGING = {
    "formatters": {},
    "handlers": {},
    "loggers": {"_granian": {"propagate": True}, "granian.access": {"propagate": True, "level": "WARNING"}},
}


class _KnownGranianAdvice(logging.Filter):
    """Granian advises against more Python threads than 2 × cores + 1 and more processes than
    cores; ours wait for the database, not for the CPU (measured: PostgreSQL's best is 16 threads
    a process), so the advice is noise in our log."""

    ADVICE = ("Configuration allows spawning up to", "Configured number of workers appears to be higher")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.ADVICE)


logging.getLogger("_granian").addFilter(_KnownGranianAdvice())


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_processes(db_url: str = "sqlite://") -> int:
    """Serving processes when --processes is not given: the measured best for the database."""
    per_core = PROCESSES_PER_CORE_SQLITE if db_url.startswith("sqlite") else PROCESSES_PER_CORE_POSTGRESQL
    return per_core * cores()


def _log_through_a_queue() -> QueueListener:
    """Threads only put records on a queue; one thread writes them.

    With a handler writing in every call thread, a thread holding the handler's lock must win the
    GIL back from every other runnable thread before it lets go: measured, each command after a
    log line waited 1.6 s at the median under load (bench/README.md)."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if not isinstance(h, QueueHandler)] or [logging.StreamHandler()]
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        if not logs.is_ours(handler.formatter):
            handler.setFormatter(logs.formatter())
    records: queue.SimpleQueue = queue.SimpleQueue()
    root.addHandler(_QueueKeepingTraceback(records))
    root.setLevel(LOG_LEVEL)
    listener = _BatchingListener(records, *handlers, respect_handler_level=True)
    listener.start()
    return listener


class _QueueKeepingTraceback(QueueHandler):
    """Puts the record on the queue with its traceback as text beside the message, not inside it
    (QueueHandler's own would fold it into the message): the JSON format writes it as `exception`."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.message = record.msg = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.args, record.exc_info = None, None
        return record


LOG_BATCH_S = 0.05


class _BatchingListener(QueueListener):
    """Writes what was queued every LOG_BATCH_S instead of waking for each record: a writer woken
    per record takes the GIL from the request threads once per SMS (measured: an SMS burst ran at
    about half the rate with a line per SMS logged than with none)."""

    def _monitor(self) -> None:
        while True:
            time.sleep(LOG_BATCH_S)
            while True:
                try:
                    record = self.queue.get_nowait()
                except queue.Empty:
                    break
                if record is self._sentinel:
                    return
                self.handle(record)


# -- a serving process ----------------------------------------------------------------------------

def batch_lanes(processes: int) -> int:
    """Group-commit lanes a serving process runs (PostgreSQL): enough batches in flight on the box
    to keep its cores busy. With a process a core, one each (a second lane in each cost 10-30% more
    CPU an SMS: smaller batches); one process alone on two cores runs two (25-65% more charges/s:
    bench/README.md)."""
    return max(1, cores() // processes)


def serving_process_app(db_url: str, clock, settings: Settings, lanes: int = 1):
    """Runs in each forked serving process, before Granian serves HTTP there: its own database
    engine and log writer, FastAGI started on its own loop; returns the WSGI app Granian serves.
    What it started is stopped when the process ends (multiprocessing's exit finalizers run after
    Granian's worker returns from its SIGTERM)."""
    from ivr.fastagi import FastAgiServer
    from selfcare import metrics
    from selfcare.http import create_app

    logs.configure(LOG_LEVEL)
    listener = _log_through_a_queue()
    core = Core(db_url, clock=clock, batch_lanes=lanes)
    metrics.instrument_core(core)
    agi = FastAgiServer(core, *settings.agi, reuse_port=True).start()

    def stop() -> None:
        started = time.monotonic()
        log.info("serving process stopping: HTTP done, cutting the calls in progress")
        agi.stop()
        core.dispose()
        log.info("serving process stopped in %.1f s", time.monotonic() - started)
        listener.stop()

    multiprocessing.util.Finalize(None, stop, exitpriority=10)
    return create_app(core, settings)


class SignalSafeEvent(threading.Event):
    """An Event a signal handler may set. Granian's supervisor sets its main loop's Event from its
    SIGTERM handler, which Python runs in the main thread, between two bytecodes; when that thread
    was just leaving `Event.wait` (woken by a serving process's exit: a process manager signals the
    whole tree at once) it held the Event's lock, and `set` waited for the lock its own thread held:
    the tree never stopped. A re-entrant lock lets the handler through."""

    def __init__(self):
        super().__init__()
        self._cond = threading.Condition(threading.RLock())


def _granian_tree():
    """Granian's process supervisor, with the worker and the ready line beside it in the parent."""
    from granian.server.mp import MPServer

    class ServingTree(MPServer):
        ready_line: str = ""
        expected_listeners: tuple = ()
        worker_stop: threading.Event
        log_listener: QueueListener | None = None
        metrics_dir: str = ""
        metrics_dir_created: bool = False

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.main_loop_interrupt = SignalSafeEvent()

        def startup(self, spawn_target, target_loader):
            # Forks the serving processes: nothing in this process runs a thread before it.
            super().startup(spawn_target, target_loader)
            from selfcare import metrics

            metrics.instrument_core(self.core)  # the worker's database errors and audit
            self.log_listener = _log_through_a_queue()
            self.worker_stop = threading.Event()
            from selfcare import worker

            threading.Thread(target=worker.run_forever, args=(self.core, self.worker_stop), name="worker",
                             daemon=True).start()
            _wait_until_listening(self.expected_listeners, READY_TIMEOUT_S, self.wrks)
            log.info("%s", self.started_line)
            # one write, so the log writer thread cannot cut the line in two
            sys.stdout.write(self.ready_line)
            sys.stdout.flush()

        def _stop_workers(self):
            """SIGTERM to every serving process, then wait on their sentinels (not join: Granian's
            watcher thread joins each process too, and whichever reaps it first leaves the other
            thinking it alive, which made Granian 'kill' processes that had already exited);
            a process still running after STOP_TIMEOUT_S is killed."""
            from multiprocessing.connection import wait

            for wrk in self.wrks:
                wrk.terminate()
            running = {wrk.inner.sentinel: wrk for wrk in self.wrks}
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while running and time.monotonic() < deadline:
                for sentinel in wait(list(running), timeout=max(0.0, deadline - time.monotonic())):
                    running.pop(sentinel)
            for wrk in running.values():
                log.error("serving process %s did not stop within %d s: killing it", wrk.inner.pid, STOP_TIMEOUT_S)
                wrk.kill()
            from selfcare import metrics

            for wrk in self.wrks:
                metrics.process_exited(wrk.inner.pid)
            self.wrks.clear()

        def shutdown(self, exit_code=0):
            if getattr(self, "worker_stop", None) is not None:
                self.worker_stop.set()
            try:
                super().shutdown(exit_code)
            finally:
                self.core.dispose()
                if self.metrics_dir_created:
                    shutil.rmtree(self.metrics_dir, ignore_errors=True)
                if self.log_listener is not None:
                    self.log_listener.stop()
                    self.log_listener = None

    return ServingTree


def demo_keys() -> list[str]:
    """The key variables left unset, whose built-in demo value is then in use: anyone who has read
    this source can forge a form cookie (SELFCARE_WEB_SECRET) or search a stolen database's code or
    PIN digests (SELFCARE_SIGNIN_KEY, SELFCARE_CARD_PIN_KEY)."""
    from billing import cards, signin
    from web import page_session

    return [name for name in (signin.KEY_ENV, page_session.SECRET_ENV, cards.PIN_KEY_ENV) if not os.environ.get(name)]


def warn_about_demo_keys() -> None:
    # A warning, not a refusal: trying the service locally must work without any setting. One line,
    # after the start-up checks, so that an error that stops serve is still the only line it prints.
    unset = demo_keys()
    if unset:
        if len(unset) == 1:
            named = f"{unset[0]} is not set: the built-in demo key is"
        else:
            named = f"{', '.join(unset[:-1])} and {unset[-1]} are not set: the built-in demo keys are"
        log.warning("%s in use; set secrets of your own before serving subscribers (docs/operations.md)", named)


def serve_forever(core: Core, settings: Settings | None = None, processes: int | None = None) -> None:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    settings = settings or Settings.from_env()
    processes = default_processes(core.db_url) if processes is None else processes
    if processes < 1:
        raise ValueError("processes must be at least 1")
    check_can_listen("SELFCARE_AGI", settings.agi)
    check_can_listen("SELFCARE_HTTP", settings.http)
    warn_about_demo_keys()
    metrics_dir, metrics_dir_created = use_metrics_dir()
    host, port = settings.http
    threads = http_threads()
    tree = _granian_tree()(
        "selfcare.http:app_from_env",  # what Granian names in its logs; the loader below is what runs
        address=host, port=port, interface=Interfaces.WSGI, workers=processes,
        blocking_threads=threads, backlog=HTTP_BACKLOG, backpressure=HTTP_CONNECTION_LIMIT,
        http=HTTPModes.http1, http1_settings=HTTP1Settings(keep_alive=True),
        log_level=LogLevels.warning, log_dictconfig=GRANIAN_LOGGING,
        respawn_failed_workers=False,
    )
    tree.core = core
    tree.metrics_dir, tree.metrics_dir_created = metrics_dir, metrics_dir_created
    tree.started_line = (f"FastAGI on {settings.agi[0]}:{settings.agi[1]}, HTTP on http://{host}:{port} "
                         f"(Granian, {threads} app thread(s) a process), {processes} serving process(es)")
    tree.ready_line = f"selfcare ready: http://{host}:{port}/health\n"
    tree.expected_listeners = ((settings.agi[1], processes), (port, processes))
    # Fork before this process opens a database connection or starts a thread; each serving
    # process opens its own connections.
    _share_code_with_serving_processes(core, settings)
    tree.serve(target_loader=partial(serving_process_app, core.db_url, core.clock, settings, batch_lanes(processes)),
               wrap_loader=False)


def _share_code_with_serving_processes(core: Core, settings: Settings) -> None:
    """Build the app once here, before the fork, and throw it away; then take what is alive out of
    the garbage collector's sight (gc.freeze). What a serving process would otherwise load for
    itself — the modules, Babel's locale data, the API's schemas — is then in pages it shares with
    this process, and no collection in a child writes to them: the serving tree's PSS with 2,000
    calls held went from 246 to 197 MiB (bench/README.md). Each child still builds its own app
    over its own Core, which then costs next to nothing."""
    import gc

    import ivr.fastagi  # noqa: F401
    from selfcare.http import create_app  # metrics with it: after use_metrics_dir, as it requires

    create_app(core, settings)
    core.dispose()
    gc.collect()
    gc.freeze()


# -- metrics ----------------------------------------------------------------------------------------

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_metrics_dir() -> tuple[str, bool]:
    """Point this process tree's metrics at a directory emptied now (prometheus-client's
    multiprocess mode: each process writes its values there, a scrape of any one sums them): the
    operator's $PROMETHEUS_MULTIPROC_DIR, or a fresh temporary one, removed when the tree stops.
    Returns (directory, whether it was made here). Values an earlier run left would be summed into
    this run's. It must happen before prometheus_client is imported: the library picks its value
    storage then, and selfcare.metrics defines its metrics when imported."""
    if "selfcare.metrics" in sys.modules:
        raise RuntimeError("selfcare.metrics was imported before the metrics directory was set up")
    directory = os.environ.get(METRICS_DIR_ENV)
    created = not directory
    if created:
        directory = tempfile.mkdtemp(prefix="selfcare-metrics-")
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    os.environ[METRICS_DIR_ENV] = directory
    if "prometheus_client" in sys.modules:  # imported before (a library that uses it): choose again
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return directory, created


# -- readiness --------------------------------------------------------------------------------------

LISTEN = "0A"  # TCP state in /proc/net/tcp


def listening_sockets(port: int) -> int:
    """How many sockets listen on `port` (with SO_REUSEPORT, one per serving process)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        count += 1
        except (FileNotFoundError, StopIteration):
            continue
    return count


def _wait_until_listening(expected: tuple, timeout_s: float, workers) -> None:
    """The ready line waits until every serving process listens on both ports: a client started
    on it would otherwise find one process taking every early connection, or none."""
    if not os.path.exists("/proc/net/tcp"):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(listening_sockets(port) >= count for port, count in expected):
            return
        if any(not worker.is_alive() for worker in workers):
            return  # Granian's supervisor reports the dead process and stops the tree
        time.sleep(0.05)
    log.error("serving processes not all listening after %.0f s", timeout_s)
