"""The FastAGI server: one thread per call, routing on `agi_network_script` to the 2112/650 flows.

Asterisk dials `AGI(agi://HOST:PORT/2112)` (or `/balance?service=2112`), sends the environment,
and then waits for our commands. Asterisk never closes the socket itself, so the handler closes it
when the flow ends, on hangup, on EOF, and on a broken environment; `stop()` also cuts the calls
still in progress so that no thread is left behind.

pyst2's own `asterisk.fastagi` does not import on Python 3, hence this module (the AGI protocol
itself still goes through pyst2, see ivr.agi_shim).
"""
from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from urllib.parse import parse_qs, urlsplit

from billing.msisdn import mask

from .agi_shim import AGIError, AgiSession, Hangup
from .channel import AgiChannel
from .flows import UnknownService, check_startup, run_call, service_for

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096  # the stock socketserver backlog of 5 refuses connects at ~200 calls at once
READ_TIMEOUT_S = 600.0  # no AGI command we send waits longer; a silent peer is a dead peer


def service_from_script(script: str) -> str:
    """'2112', '/2112', 'balance?service=2112', 'ivr/650' -> the service number."""
    parts = urlsplit(script.strip())
    query = parse_qs(parts.query)
    if query.get("service"):
        return query["service"][0].strip()
    return parts.path.strip("/").rsplit("/", 1)[-1]


class _CallHandler(socketserver.BaseRequestHandler):
    server: "_ThreadedServer"

    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.server.read_timeout_s)
            with sock.makefile("r", encoding="utf-8", errors="replace", newline="\n") as reader, \
                    sock.makefile("w", encoding="utf-8", newline="\n") as writer:
                self._serve(reader, writer)
        finally:
            _close(sock)

    def _serve(self, reader, writer) -> None:
        try:
            session = AgiSession(reader, writer)
        except (Hangup, AGIError) as why:
            log.warning("fastagi %s: no usable AGI environment (%s); closing", self.client_address[0], why)
            return
        script = session.env.get("agi_network_script", "")
        channel = AgiChannel(session, sound_prefix=self.server.sound_prefix)
        try:
            service = service_for(service_from_script(script))
        except UnknownService as why:
            log.warning("fastagi: %s (agi_network_script=%r) from %s", why, script, mask(channel.caller))
            self._refuse(channel)
            return
        outcome = run_call(self.server.core, channel, service.number)
        log.info("fastagi call %s %s ended: %s", service.number, mask(channel.caller), outcome)

    @staticmethod
    def _refuse(channel: AgiChannel) -> None:
        try:
            channel.play(["service-unavailable"])
            channel.hangup()
        except (Hangup, AGIError):
            pass


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer
    sock.close()


ACCEPT_BATCH = 256


class _ThreadedServer(socketserver.ThreadingTCPServer):
    # Call threads are daemons (a stuck call never blocks the process from exiting), and the stock
    # ThreadingMixIn does not track daemon threads, so we track and join them ourselves.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address, core, *, sound_prefix: str, read_timeout_s: float, reuse_port: bool = False):
        self.allow_reuse_port = reuse_port  # read by server_bind(): several processes, one port
        self.core = core
        self.sound_prefix = sound_prefix
        self.read_timeout_s = read_timeout_s
        self._live: set[socket.socket] = set()
        self._call_threads: set[threading.Thread] = set()
        self._live_lock = threading.Lock()
        super().__init__(address, _CallHandler)

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)  # so one wake-up can drain the backlog (below)

    def _handle_request_noblock(self) -> None:
        """Accept every call waiting, not one per wake-up: with a thousand call threads runnable,
        each wake-up of this loop waits its turn for the GIL, and one accept per turn left callers
        4-6 s before their ANSWER (bench/README.md)."""
        for _ in range(ACCEPT_BATCH):
            try:
                request, client_address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # closed under us at shutdown
                return
            request.setblocking(True)
            self.process_request(request, client_address)

    def process_request(self, request, client_address) -> None:
        thread = threading.Thread(
            target=self._call_thread, args=(request, client_address), name=f"agi-call-{client_address[1]}", daemon=True
        )
        with self._live_lock:
            self._call_threads.add(thread)
            self._live.add(request)  # tracked before the thread runs, so stop() can always cut it
        try:
            thread.start()
        except RuntimeError:  # no more threads: refuse this call rather than the whole server
            log.error("fastagi: cannot start a thread for %s; closing the call", client_address[0])
            with self._live_lock:
                self._call_threads.discard(thread)
                self._live.discard(request)
            self.shutdown_request(request)

    def _call_thread(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                self._call_threads.discard(threading.current_thread())
                self._live.discard(request)

    def join_call_threads(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._live_lock:
            threads = list(self._call_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._live_lock:
            stuck = [t for t in self._call_threads if t.is_alive()]
        if stuck:
            log.error("fastagi: %d call threads still running after %.1fs", len(stuck), timeout_s)

    def live_calls(self) -> int:
        with self._live_lock:
            return len(self._live)

    def cut_live_calls(self) -> None:
        """Shut every call's socket down: its handler reads EOF, raises Hangup and ends."""
        with self._live_lock:
            live = list(self._live)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        log.exception("fastagi: unhandled error for %s", client_address[0])


class FastAgiServer:
    """`with FastAgiServer(core, port=0) as server: ... server.port ...` (or start()/stop()).

    port=0 binds a free port. `check_prompts=True` refuses to start when a prompt the flows can
    play is missing from the prompt catalogue. `reuse_port=True` lets several processes listen on
    the same port (SO_REUSEPORT: the kernel spreads the calls over them)."""

    def __init__(
        self,
        core,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sound_prefix: str = "",
        read_timeout_s: float = READ_TIMEOUT_S,
        check_prompts: bool = True,
        reuse_port: bool = False,
    ):
        if check_prompts:
            check_startup(core)
        self._server = _ThreadedServer(
            (host, port), core, sound_prefix=sound_prefix, read_timeout_s=read_timeout_s, reuse_port=reuse_port
        )
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def listen_backlog(self) -> int:
        return self._server.request_queue_size

    def live_calls(self) -> int:
        """Calls whose thread is running (tracked from accept until their socket is closed)."""
        return self._server.live_calls()

    def start(self) -> "FastAgiServer":
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="fastagi-accept", daemon=True
        )
        self._thread.start()
        log.info("fastagi listening on %s:%d", *self.address)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() is called from another one (or Ctrl-C)."""
        log.info("fastagi listening on %s:%d", *self.address)
        self._serving = True
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._serving = False
            self._close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, cut the calls in progress, and wait for every call thread to end."""
        if self._thread is None:
            if self._serving:  # serve_forever() runs in another thread and closes when it returns
                self._server.shutdown()
            else:
                self._close()
            return
        self._server.shutdown()
        self._thread.join(timeout_s)
        self._thread = None
        self._close(timeout_s)

    def _close(self, timeout_s: float = 10.0) -> None:
        self._server.server_close()
        self._server.cut_live_calls()
        self._server.join_call_threads(timeout_s)

    def __enter__(self) -> "FastAgiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
