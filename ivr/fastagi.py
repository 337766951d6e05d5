"""The FastAGI server: asyncio accepts and speaks the protocol, routing on `agi_network_script` to
the 2112/650 flows; the database runs on a small pool of threads.

Asterisk dials `AGI(agi://HOST:PORT/2112)` (or `/balance?service=2112`), sends the environment,
and then waits for our commands. Asterisk never closes the socket itself, so we close it when the
flow ends, on hangup, on EOF, and on a broken environment; `stop()` also cuts the calls still in
progress, so that nothing is left behind.

How a call runs. One event loop (one thread) accepts every call and does all the socket I/O. Each
call's flow is the ordinary synchronous code (ivr.flows over ivr.channel.AgiChannel over the pyst2
shim, ivr.agi_shim, exactly as the classic AGI script runs it) inside a greenlet on that loop: when
the shim reads a reply or flushes a command, the greenlet hands the wait to the loop and the loop
runs other calls meanwhile. A call waiting for Asterisk (a prompt playing, a digit) costs a few
KiB, not a thread. The flow's database work (`CallController.blocking`) runs on a bounded pool of
threads (`db_threads`), so the loop never waits for a lock or a commit; calls queue for the pool,
the accept path never does. With a thread per call, the accept thread had to win the GIL from a
thousand runnable call threads and callers waited seconds for their ANSWER (bench/README.md).

pyst2's own `asterisk.fastagi` does not import on Python 3, hence this module (the AGI protocol
itself still goes through pyst2, see ivr.agi_shim).
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import greenlet

from billing.msisdn import mask
from selfcare import logs, metrics

from .agi_shim import MAX_LINE_CHARS, AGIError, AgiSession, Hangup
from .channel import AgiChannel
from .flows import UnknownService, check_startup, run_call, service_for

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096  # a backlog of 5 refused connects at ~200 calls at once
READ_TIMEOUT_S = 600.0  # no AGI command we send waits longer; a silent peer is a dead peer
DB_THREADS = int(os.environ.get("SELFCARE_AGI_DB_THREADS", "8"))
CLOSE_LINGER_S = 2.0  # after our FIN, how long Asterisk may take to close its side
STREAM_LIMIT = 2 * MAX_LINE_CHARS  # bytes buffered per call before we stop reading; a longer line is refused


def service_from_script(script: str) -> str:
    """'2112', '/2112', 'balance?service=2112', 'ivr/650' -> the service number."""
    parts = urlsplit(script.strip())
    query = parse_qs(parts.query)
    if query.get("service"):
        return query["service"][0].strip()
    return parts.path.strip("/").rsplit("/", 1)[-1]


# -- synchronous code on the event loop, in greenlets --------------------------------------------

class _FlowGreenlet(greenlet.greenlet):
    """A call's synchronous flow; it may wait for an awaitable with `wait_on_loop`."""


def wait_on_loop(awaitable):
    """From a call's flow: let the loop await `awaitable` (other calls run meanwhile) and return
    its result here, or raise its exception here."""
    current = greenlet.getcurrent()
    if not isinstance(current, _FlowGreenlet):
        raise RuntimeError("wait_on_loop called outside a call's flow")
    return current.parent.switch(awaitable)


async def run_flow(fn, *args):
    """Run the synchronous `fn(*args)` in a greenlet on this loop, serving its waits; its result."""
    flow = _FlowGreenlet(fn, parent=greenlet.getcurrent())
    request = flow.switch(*args)
    while not flow.dead:
        try:
            value = await request
        except BaseException:  # noqa: BLE001 - handed to the flow, which raises or handles it
            request = flow.throw(*sys.exc_info())
        else:
            request = flow.switch(value)
    return request


class _CallConnection(asyncio.Protocol):
    """One call's socket, and the text-mode 'files' the shim reads and writes over it.

    Bytes from Asterisk collect in a buffer as they arrive; `readline` (called from the call's
    flow) takes a whole line from it without leaving the greenlet when one is there (the 23 lines of
    the environment arrive together), and waits on the loop only when none is: EOF gives "", a
    silent peer a TimeoutError, both a Hangup in the shim. `write` goes to the transport; `flush`
    waits only while the kernel's send buffer is full."""

    def __init__(self, server: "FastAgiServer", database: ThreadPoolExecutor):
        self._server = server
        self._database = database
        self._buffer = bytearray()
        self._eof = False
        self._waiter: asyncio.Future | None = None
        self._drained: asyncio.Future | None = None
        self._reading_paused = False
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.think = metrics.ThinkTimer()

    # -- asyncio's side ---------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = (transport.get_extra_info("peername") or ("?",))[0]
        self._server._started(self, asyncio.ensure_future(self._server._call(self, self._database)))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > STREAM_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()  # resumed as the flow takes lines
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep our side open: we may still have to write (a half-closed peer)

    def connection_lost(self, exc) -> None:
        self._eof = True
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self, timeout_s: float) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await self._waiter
        finally:
            self._waiter = None

    # -- the shim's side (called from the call's flow, on the loop's thread) --------------------

    def readline(self, size: int = -1) -> str:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or self._eof or len(self._buffer) > MAX_LINE_CHARS:
                # a whole line; or what is left at EOF; or a line too long, which the shim refuses
                cut = end + 1 if end >= 0 else len(self._buffer)
                line = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                if self._reading_paused and len(self._buffer) <= STREAM_LIMIT:
                    self._reading_paused = False
                    self.transport.resume_reading()
                self.think.replied()
                return line.decode("utf-8", "replace")
            wait_on_loop(self._more(self._server.read_timeout_s))

    def write(self, text: str) -> int:
        if self.transport is None or self.transport.is_closing():
            raise BrokenPipeError("the call's connection is closed")
        self.think.commanded()
        self.transport.write(text.encode("utf-8"))
        return len(text)

    def flush(self) -> None:
        if self._drained is not None:
            wait_on_loop(self._drained)
            if self.transport.is_closing():
                raise BrokenPipeError("the call's connection is closed")

    # -- the end ------------------------------------------------------------------------------

    async def close(self) -> None:
        """End our side first (FIN), then read what Asterisk still sends (the asynchronous HANGUP
        line may come after the reply we read last) until it closes too, for at most
        CLOSE_LINGER_S. Closing with its bytes unread would answer them with a reset."""
        transport = self.transport
        try:
            if not transport.is_closing() and transport.can_write_eof():
                transport.write_eof()
            if self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
            async with asyncio.timeout(CLOSE_LINGER_S):
                while not self._eof:
                    self._buffer.clear()
                    await self._more(CLOSE_LINGER_S)
        except (OSError, TimeoutError):
            pass
        finally:
            transport.close()

    def cut(self) -> None:
        """Close the socket under the flow: its next read gets EOF and it ends."""
        if self.transport is not None:
            self.transport.close()


# -- the server -----------------------------------------------------------------------------------

class FastAgiServer:
    """`with FastAgiServer(core, port=0) as server: ... server.port ...` (or start()/stop()).

    port=0 binds a free port (bound in the constructor). `check_prompts=True` refuses to start
    when a prompt the flows can play is missing from the prompt catalogue. `reuse_port=True` lets
    several processes listen on the same port (SO_REUSEPORT: the kernel spreads the calls over
    them). `db_threads` bounds the threads running the flows' database work."""

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
        db_threads: int = DB_THREADS,
    ):
        if check_prompts:
            check_startup(core)
        self.core = core
        self.sound_prefix = sound_prefix
        self.read_timeout_s = read_timeout_s
        self.db_threads = max(1, db_threads)
        self._socket = _listening_socket(host, port, reuse_port)
        self._calls: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._serving = False
        self._stop_timeout_s = 10.0

    @property
    def address(self) -> tuple[str, int]:
        return self._socket.getsockname()[:2]

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def listen_backlog(self) -> int:
        return LISTEN_BACKLOG

    def live_calls(self) -> int:
        """Calls in progress (from accept until their socket is closed)."""
        return len(self._calls)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> "FastAgiServer":
        self._thread = threading.Thread(target=self.serve_forever, name="fastagi-loop", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() is called from another one."""
        self._serving = True
        try:
            asyncio.run(self._serve())
        finally:
            self._socket.close()
            self._ready.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, cut the calls in progress, and wait for them and the database threads."""
        self._stop_timeout_s = timeout_s
        self._stop_requested.set()
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            try:
                loop.call_soon_threadsafe(stopped.set)
            except RuntimeError:  # the loop has already finished
                pass
        if self._thread is not None:
            self._thread.join(timeout_s + 5)
            if self._thread.is_alive():
                log.error("fastagi: the server thread did not stop within %.1fs", timeout_s + 5)
            self._thread = None
        elif not self._serving:
            self._socket.close()  # never served

    def __enter__(self) -> "FastAgiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        database = ThreadPoolExecutor(self.db_threads, thread_name_prefix="fastagi-db")
        server = await self._loop.create_server(lambda: _CallConnection(self, database), sock=self._socket,
                                                backlog=LISTEN_BACKLOG)
        log.info("fastagi listening on %s:%d", *self.address)
        self._ready.set()
        try:
            if not self._stop_requested.is_set():
                await self._stopped.wait()
        finally:
            server.close()
            await self._cut_calls(self._stop_timeout_s)
            database.shutdown(wait=True, cancel_futures=True)

    async def _cut_calls(self, timeout_s: float) -> None:
        """Close every call's socket: its flow reads EOF, raises Hangup and ends."""
        for connection in list(self._calls.values()):
            connection.cut()
        if self._calls:
            done, pending = await asyncio.wait(list(self._calls), timeout=timeout_s)
            if pending:
                log.error("fastagi: %d calls still running after %.1fs", len(pending), timeout_s)
                for task in pending:
                    task.cancel()

    # -- one call ---------------------------------------------------------------------------------

    def _started(self, connection: "_CallConnection", task: asyncio.Task) -> None:
        self._calls[task] = connection

    async def _call(self, connection: "_CallConnection", database: ThreadPoolExecutor) -> None:
        task = asyncio.current_task()  # recorded by connection_made before it first runs
        loop = asyncio.get_running_loop()

        def blocking(fn, *args):  # the flow's database work, off the loop, in the call's log context
            work = functools.partial(contextvars.copy_context().run, fn, *args)
            return wait_on_loop(loop.run_in_executor(database, work))

        metrics.LIVE_CALLS.inc()
        try:
            await run_flow(self._serve_call, connection, connection.peer, blocking)
        except Exception:  # noqa: BLE001 - one call's failure must not reach the server
            log.exception("fastagi: unhandled error for %s", connection.peer)
        finally:
            try:
                await connection.close()
            finally:
                self._calls.pop(task, None)
                metrics.LIVE_CALLS.dec()

    def _serve_call(self, stream: "_CallConnection", peer: str, blocking) -> None:
        """The call itself, synchronous, in its greenlet: the same steps as the classic AGI script."""
        try:
            session = AgiSession(stream, stream)
        except (Hangup, AGIError) as why:
            log.warning("fastagi %s: no usable AGI environment (%s); closing", peer, why)
            return
        script = session.env.get("agi_network_script", "")
        channel = AgiChannel(session, sound_prefix=self.sound_prefix)
        with logs.bound(call_id=session.env.get("agi_uniqueid", ""), number=channel.caller):
            try:
                service = service_for(service_from_script(script))
            except UnknownService as why:
                log.warning("fastagi: %s (agi_network_script=%r) from %s", why, script, mask(channel.caller))
                metrics.labelled(metrics.REQUESTS, channel="ivr", service="unknown", outcome="unknown-service").inc()
                _refuse(channel)
                return
            outcome = run_call(self.core, channel, service.number, blocking=blocking)
            metrics.labelled(metrics.REQUESTS, channel="ivr", service=service.number, outcome=outcome).inc()
            log.info("fastagi call %s %s ended: %s", service.number, mask(channel.caller), outcome)


def _refuse(channel: AgiChannel) -> None:
    try:
        channel.play(["service-unavailable"])
        channel.hangup()
    except (Hangup, AGIError):
        pass


def _listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
