"""The harness's own FastAGI peer: the Asterisk harness is proven against it, not against our IVR,
so a harness fault never passes for an IVR fault (or hides one)."""
from __future__ import annotations

import socket
import threading


class TinyFastAgi:
    """A minimal FastAGI responder to prove the harness without our IVR: it sends `script` (AGI
    commands) to each call, records the environment and the replies, and closes the socket on a
    hangup (a bare HANGUP line, 511, or result=-1) like a well-behaved server must."""

    def __init__(self, script: list[str]):
        self.script = script
        self.sessions: list[dict] = []
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> "TinyFastAgi":
        self._acceptor = threading.Thread(target=self._accept, name="tiny-fastagi", daemon=True)
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        session = {"env": {}, "replies": [], "closed": False}
        self.sessions.append(session)
        conn.settimeout(60)
        try:
            reader = conn.makefile("r", encoding="utf-8", newline="\n")
            while (line := reader.readline().rstrip("\n")):
                key, _, value = line.partition(": ")
                session["env"][key] = value
            for command in self.script:
                conn.sendall(command.encode() + b"\n")
                reply = reader.readline().rstrip("\n")
                if reply == "HANGUP":  # async notice: the reply of the command follows
                    reply = reader.readline().rstrip("\n")
                    session["replies"].append((command, "HANGUP+" + reply))
                    break
                session["replies"].append((command, reply))
                if not reply or reply.startswith("511") or reply.startswith("200 result=-1") and "endpos" not in reply:
                    break
        except OSError:
            pass
        finally:
            conn.close()
            session["closed"] = True

    def stop(self) -> None:
        self._stopping = True
        self._server.close()
        for thread in self._threads:
            thread.join(5)
