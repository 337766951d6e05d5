"""Free loopback ports for the peers (each run picks its own, so two runs never collide)."""
from __future__ import annotations

import socket
import time

from tests.peers.errors import PeerError


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_udp_port_pair() -> int:
    """An even UDP port whose successor is free too (RTP + RTCP)."""
    for _ in range(200):
        port = free_port(socket.SOCK_DGRAM) & ~1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise PeerError("no free UDP port pair on 127.0.0.1")


def free_udp_range(width: int = 40) -> int:
    """The start of `width` consecutive free UDP ports (Asterisk's and baresip's RTP ranges)."""
    for _ in range(200):
        start = free_udp_port_pair()
        if start + width >= 65535:
            continue
        sockets = []
        try:
            for port in range(start, start + width):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return start
    raise PeerError(f"no {width} free consecutive UDP ports on 127.0.0.1")


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise PeerError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")
