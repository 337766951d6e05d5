"""A WSGI app under waitress in a thread on a free loopback port: our HTTP app behind a real Kannel
in the tests, and the trivial responder that gives the SMS benchmark its ceiling."""
from __future__ import annotations

import threading

from tests.peers.ports import wait_for_port


class AppServer:
    """A WSGI app under waitress in a thread, with Kannel's keep-alive pool in mind (>= 1000)."""

    def __init__(self, app, threads: int = 8, connection_limit: int = 2000):
        from waitress.server import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads,
                                    connection_limit=connection_limit, backlog=2048, channel_timeout=60,
                                    ident="selfcare-test")
        self.port = self.server.effective_port
        self._thread = threading.Thread(target=self._run, name="waitress", daemon=True)

    def _run(self):
        try:
            self.server.run()
        except (OSError, ValueError):
            pass  # closed under our feet at shutdown

    def start(self) -> "AppServer":
        self._thread.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self.server.close()
        self._thread.join(timeout=5)
