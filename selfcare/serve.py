"""One process tree: FastAGI, HTTP (waitress) and the worker."""
from __future__ import annotations

import logging
import signal
import threading

from billing.core import Core
from selfcare.config import Settings

log = logging.getLogger("selfcare.serve")


def serve_forever(core: Core, settings: Settings | None = None) -> None:
    from waitress.server import create_server

    from selfcare import worker
    from selfcare.http import create_app

    settings = settings or Settings.from_env()
    logging.getLogger().setLevel(logging.INFO)
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
