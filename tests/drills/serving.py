"""`selfcare serve` started and stopped for a drill, on ports the drill chooses."""
from __future__ import annotations

import os
import signal
import subprocess

from tests.drills.sms_burst import SECRET
from tests.e2e.test_serve import REPO, SELFCARE, read_ready_line


def start_serve(db_url: str, http_port: int, agi_port: int, processes: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http_port}", "SELFCARE_AGI": f"127.0.0.1:{agi_port}",
           "SELFCARE_KANNEL_SECRET": SECRET, "SELFCARE_LOG_LEVEL": "WARNING"}
    env.pop("SELFCARE_PROCESSES", None)
    more = [] if processes is None else ["--processes", str(processes)]
    # its own session, so that the whole tree can be killed at once, as a crash or an OOM kill would
    process = subprocess.Popen([*SELFCARE, "--db", db_url, "serve", *more], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    read_ready_line(process)
    return process


def kill_tree(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the parent and every serving process at once
    process.wait(30)


def stop_serve(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            kill_tree(process)
