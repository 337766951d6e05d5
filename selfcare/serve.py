"""One process tree: FastAGI, HTTP (waitress) and the worker.

With `processes` > 1 the parent forks that many serving processes, each with its own FastAGI and
HTTP servers on the same two ports (SO_REUSEPORT: the kernel spreads connections over them), so
call and request handling use every core despite the GIL; the parent runs the worker and
supervises. Workers keep no state, so this is the same story as more boxes (docs/architecture.md).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
from logging.handlers import QueueHandler, QueueListener

from billing.core import Core
from selfcare import logs
from selfcare.config import Settings

log = logging.getLogger("selfcare.serve")

HTTP_THREADS = int(os.environ.get("SELFCARE_HTTP_THREADS", "8"))
# Kannel keeps up to 512 keep-alive connections: waitress' default limit of 100 refuses a burst.
HTTP_CONNECTION_LIMIT = 2000
HTTP_BACKLOG = 2048


def _log_through_a_queue() -> QueueListener:
    """Call threads only put records on a queue; one thread writes them.

    With a handler writing in every call thread, a thread holding the handler's lock must win the
    GIL back from a thousand runnable threads before it lets go: measured, each command after a log
    line waited 1.6 s at the median under load (bench/README.md)."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if not isinstance(h, QueueHandler)] or [logging.StreamHandler()]
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        if not isinstance(handler.formatter, logs.MaskingFormatter):
            handler.setFormatter(logs.MaskingFormatter(logs.FORMAT))
    records: queue.SimpleQueue = queue.SimpleQueue()
    root.addHandler(QueueHandler(records))
    root.setLevel(logging.INFO)
    listener = QueueListener(records, *handlers, respect_handler_level=True)
    listener.start()
    return listener


def _http_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # waitress sets this on sockets it binds itself, not on ours; without it a reply whose body
    # follows its headers waits for the peer's delayed ACK (~40 ms with Kannel).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


class Servers:
    """FastAGI and HTTP of one process; `run()` blocks until `stop()`."""

    def __init__(self, core: Core, settings: Settings, *, reuse_port: bool):
        from waitress.server import create_server

        from ivr.fastagi import FastAgiServer
        from selfcare.http import create_app

        # waitress warns on every queued request in a burst: a log line per SMS helps nobody
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.core = core
        self.agi = FastAgiServer(core, *settings.agi, reuse_port=reuse_port)
        self.http = create_server(
            create_app(core, settings), sockets=[_http_socket(*settings.http, reuse_port)],
            threads=HTTP_THREADS, connection_limit=HTTP_CONNECTION_LIMIT, backlog=HTTP_BACKLOG,
            channel_timeout=60, asyncore_use_poll=True, ident="selfcare")
        self._stopping = threading.Event()

    def run(self) -> None:
        self.agi.start()
        try:
            self.http.run()
        except (OSError, ValueError):
            if not self._stopping.is_set():
                raise
        finally:
            self.agi.stop()

    def stop(self) -> None:
        """Let the requests in hand finish (their charges commit or roll back whole), then close.
        A reply that cannot be sent any more is recovered by the gateway's retry: same key, same
        reply, no second charge."""
        self._stopping.set()
        self.http.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        self.http.close()


def _serving_process(db_url: str, clock, settings: Settings) -> None:
    """A forked serving process: its own database engine, its own log writer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    logs.configure(logging.INFO)
    listener = _log_through_a_queue()
    core = Core(db_url, clock=clock)
    servers = Servers(core, settings, reuse_port=True)
    signal.signal(signal.SIGTERM, lambda *_: servers.stop())
    try:
        servers.run()
    finally:
        core.dispose()
        listener.stop()


def serve_forever(core: Core, settings: Settings | None = None, processes: int = 1) -> None:
    from selfcare import worker

    settings = settings or Settings.from_env()
    if processes < 1:
        raise ValueError("processes must be at least 1")
    children = []
    if processes > 1:
        # Fork before this process starts any thread; each child opens its own connections.
        core.dispose()
        fork = multiprocessing.get_context("fork")
        children = [fork.Process(target=_serving_process, args=(core.db_url, core.clock, settings),
                                 name=f"selfcare-serve-{n}") for n in range(processes)]
        for child in children:
            child.start()
    log_listener = _log_through_a_queue()
    stop = threading.Event()
    threading.Thread(target=worker.run_forever, args=(core, stop), name="worker", daemon=True).start()

    servers = Servers(core, settings, reuse_port=False) if not children else None
    log.info("FastAGI on %s:%d, HTTP on http://%s:%d, %d serving process(es)", *settings.agi, *settings.http,
             processes)
    # one write, so the log writer thread cannot cut the line in two
    sys.stdout.write(f"selfcare ready: http://{settings.http[0]}:{settings.http[1]}/health\n")
    sys.stdout.flush()

    def _stop(*_):
        stop.set()
        if servers:
            servers.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if servers:
            servers.run()
        else:
            _supervise(children, stop)
    finally:
        stop.set()
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(15)
        core.dispose()
        log_listener.stop()


def _supervise(children, stop: threading.Event) -> None:
    """Wait for the stop signal; a serving process that dies takes the service down loudly
    rather than leaving it half-served (the process manager restarts the whole tree)."""
    while not stop.wait(1.0):
        dead = [child for child in children if not child.is_alive()]
        if dead:
            log.error("serving process %s exited with %s: stopping", dead[0].name, dead[0].exitcode)
            raise SystemExit(1)
