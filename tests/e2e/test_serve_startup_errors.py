"""`selfcare serve` started as an operator starts it, into the mistakes met first: a database that
never answers (a firewall dropping packets), no schema, a port another `selfcare serve` holds.
Each is one line on stderr and exit 2, soon, with nothing left running."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from billing.core import PG_CONNECT_TIMEOUT_S
from tests.e2e.test_serve import REPO, SELFCARE, read_ready_line, selfcare, wait_until_up
from tests.peers.ports import free_port


def serve(db: str, http: int, agi: int, **kw) -> subprocess.Popen:
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http}", "SELFCARE_AGI": f"127.0.0.1:{agi}"}
    env.pop("SELFCARE_PROCESSES", None)
    return subprocess.Popen([*SELFCARE, "--db", db, "serve", "--processes", "1"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw)


def finished(process: subprocess.Popen, seconds: float) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        _out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"selfcare serve still running after {seconds} s: it hangs") from None
    return process.returncode, err, time.monotonic() - started


def test_serve_on_a_database_that_never_answers_exits_within_the_connect_timeout():
    with socket.socket() as black_hole:  # accepts the TCP handshake (the kernel does), never speaks
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        url = f"postgresql://selfcare:secret@127.0.0.1:{black_hole.getsockname()[1]}/selfcare"
        code, err, took = finished(serve(url, free_port(), free_port()), PG_CONNECT_TIMEOUT_S + 25)
    print(f"\nDRILL startup-unreachable-db: selfcare serve exited {code} after {took:.1f} s "
          f"(connect timeout {PG_CONNECT_TIMEOUT_S} s), {err.count(chr(10))} line on stderr")
    assert code == 2
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("error: cannot reach the database at postgresql+psycopg://selfcare:***@127.0.0.1:")
    assert "timeout expired" in err
    assert took < PG_CONNECT_TIMEOUT_S + 20


def test_serve_on_a_file_without_the_schema_says_run_db_upgrade(tmp_path):
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, err, _took = finished(serve(db, free_port(), free_port()), 60)
    assert (code, err) == (2, f"error: the database at {db} has no schema: run `selfcare db upgrade`\n")


def test_a_second_serve_on_the_ports_of_a_running_one_stops_and_the_first_keeps_serving(tmp_path):
    # Our own sockets set SO_REUSEPORT, so without the check a second tree would silently share them.
    db = f"sqlite:///{tmp_path / 'served.db'}"
    selfcare(db, "db", "upgrade")
    http, agi = free_port(), free_port()
    first = serve(db, http, agi)
    try:
        read_ready_line(first)
        code, err, _took = finished(serve(db, free_port(), agi), 60)
        assert (code, err) == (2, f"error: cannot listen on 127.0.0.1:{agi} (SELFCARE_AGI): Address already in use; "
                                  "stop what holds it or set SELFCARE_AGI=HOST:PORT to another port\n")
        code, err, _took = finished(serve(db, http, free_port()), 60)
        assert code == 2 and f"cannot listen on 127.0.0.1:{http} (SELFCARE_HTTP)" in err
        wait_until_up(http, first, seconds=10)
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
