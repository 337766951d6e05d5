"""One process tree: FastAGI, HTTP (waitress) and the worker."""
from __future__ import annotations

import logging
import queue
import signal
import threading
from logging.handlers import QueueHandler, QueueListener

from billing.core import Core
from selfcare.config import Settings

log = logging.getLogger("selfcare.serve")


def _log_through_a_queue() -> QueueListener:
    """Call threads only put records on a queue; one thread writes them.

    With a handler writing in every call thread, a thread holding the handler's lock must win the
    GIL back from a thousand runnable threads before it lets go: measured, each command after a log
    line waited 1.6 s at the median under load (bench/README.md)."""
    root = logging.getLogger()
    handlers = root.handlers[:] or [logging.StreamHandler()]
    for handler in handlers:
        root.removeHandler(handler)
        if handler.formatter is None:
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    records: queue.SimpleQueue = queue.SimpleQueue()
    root.addHandler(QueueHandler(records))
    root.setLevel(logging.INFO)
    listener = QueueListener(records, *handlers, respect_handler_level=True)
    listener.start()
    return listener


def serve_forever(core: Core, settings: Settings | None = None) -> None:
    from waitress.server import create_server

    from selfcare import worker
    from selfcare.http import create_app

    settings = settings or Settings.from_env()
    log_listener = _log_through_a_queue()
    stop = threading.Event()
    stoppers = []

    try:
        from ivr.fastagi import FastAgiServer
    except ModuleNotFoundError:
        FastAgiServer = None
    if FastAgiServer is not None:
        agi = FastAgiServer(core, *settings.agi)
        agi.start()
        stoppers.append(agi.stop)
        log.info("FastAGI listening on %s:%d", *settings.agi)

    threading.Thread(target=worker.run_forever, args=(core, stop), name="worker", daemon=True).start()

    # Kannel keeps up to 512 keep-alive connections: waitress' default limit of 100 refuses a burst.
    http = create_server(create_app(core, settings), host=settings.http[0], port=settings.http[1],
                         threads=8, connection_limit=2000, backlog=2048, channel_timeout=60,
                         ident="selfcare")
    log.info("HTTP listening on http://%s:%d", *settings.http)
    print(f"selfcare ready: http://{settings.http[0]}:{settings.http[1]}/health", flush=True)

    def _stop(*_):
        stop.set()
        http.close()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        http.run()
    except (OSError, ValueError):
        if not stop.is_set():
            raise
    finally:
        stop.set()
        for fn in stoppers:
            fn()
        core.dispose()
        log_listener.stop()
