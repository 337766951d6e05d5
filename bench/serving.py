"""`selfcare serve` as a benchmark's subject: started as an operator starts it, measured from /proc.

The benchmarks run the real command (`.venv/bin/selfcare --db URL serve --processes N`) on free
loopback ports, wait until every serving process listens, and stop it with SIGTERM. The sampler
sums threads and memory over the whole serving tree: with --processes N the calls are in the
children, the worker in the parent.
"""
from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from selfcare.serve import default_processes, listening_sockets
from tests.peers.ports import free_port

REPO = Path(__file__).resolve().parents[1]
SELFCARE = REPO / ".venv" / "bin" / "selfcare"
def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> str:
    model, mem_kib = "?", 0
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return (f"nproc {os.cpu_count()}, {model}, {mem_kib / 1024 / 1024:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


BENCH_KEYS = ("SELFCARE_SIGNIN_KEY", "SELFCARE_WEB_SECRET", "SELFCARE_CARD_PIN_KEY")


@dataclass
class SelfcareServe:
    """A running `selfcare serve`; `stop()` sends SIGTERM and waits (use it in `finally`)."""

    process: subprocess.Popen
    agi_port: int
    http_port: int
    processes: int
    log_path: Path
    returncode: int | None = field(default=None)

    @classmethod
    def start(cls, db_url: str, processes: int | None, log_path: Path, env: dict[str, str] | None = None,
              timeout_s: float = 60.0) -> "SelfcareServe":
        """`processes=None` runs `selfcare serve` with its default (one serving process per core)."""
        agi_port, http_port = free_port(), free_port()
        # Keys of the benchmark's own, as an operator sets them: the log then holds only what the load
        # itself caused (serve warns in one line of keys left to their demo values).
        keys = {name: f"bench-{name.lower()}-{os.getpid()}" for name in BENCH_KEYS}
        environment = {**os.environ, **keys, **(env or {}),
                       "SELFCARE_AGI": f"127.0.0.1:{agi_port}", "SELFCARE_HTTP": f"127.0.0.1:{http_port}"}
        environment.pop("SELFCARE_PROCESSES", None)  # --processes says it
        argv = [str(SELFCARE), "--db", db_url, "serve"]
        if processes is not None:
            argv += ["--processes", str(processes)]
        with open(log_path, "ab") as log:
            # its own session: if the parent ever had to be killed, its children go with the group
            process = subprocess.Popen(argv, cwd=REPO, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        served = cls(process, agi_port, http_port, processes or default_processes(db_url), log_path)
        try:
            served._wait_listening(timeout_s)
        except BaseException:
            served.stop()
            raise
        return served

    def _wait_listening(self, timeout_s: float) -> None:
        # Every serving process must listen before the load starts, or the kernel would hand all
        # early connects to the first one that did.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"selfcare serve exited with {self.process.returncode}: "
                                   f"{self.log_tail()}")
            if (listening_sockets(self.agi_port) >= self.processes
                    and listening_sockets(self.http_port) >= self.processes):
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=5):
                    return  # accepts (an HTTP probe, not an AGI one: that would be a bogus call)
            time.sleep(0.1)
        raise RuntimeError(f"selfcare serve did not listen within {timeout_s:.0f} s: {self.log_tail()}")

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.returncode = self.process.returncode
        return self.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text("utf-8", "replace").splitlines()
        except OSError:
            return []

    def log_problems(self) -> int:
        """Lines at WARNING or worse, and tracebacks, in its log."""
        return sum(1 for line in self._log_lines()
                   if " WARNING " in line or " ERROR " in line or line.startswith("Traceback"))


# ------------------------------------------------------------------------------ the serving tree

def _children_by_parent() -> dict[int, list[int]]:
    # /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN, which some kernels lack: scan PPid.
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # pid (comm) state ppid ...: comm may hold spaces and parentheses
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    children = _children_by_parent()
    tree, index = [pid], 0
    while index < len(tree):
        tree.extend(children.get(tree[index], []))
        index += 1
    return tree


def _status_of(pid: int) -> tuple[int, int, int]:
    """(threads, RSS KiB, PSS KiB) of one process."""
    threads = rss = pss = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pss = rss
    return threads, rss, pss


@dataclass
class TreeSample:
    processes: int = 0
    threads: int = 0
    rss_kib: int = 0
    pss_kib: int = 0
    cpu_s: float = 0.0  # user + system time of the tree's live processes


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class ProcessTreeSampler:
    """Threads, RSS and PSS summed over a process and its descendants, every 0.2 s; keeps the max
    (and the CPU time used between start() and stop())."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.pid = pid
        self.every_s = every_s
        self.idle = TreeSample()
        self.peak = TreeSample()
        self.last = TreeSample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def sample(self) -> TreeSample:
        total = TreeSample()
        for pid in process_tree(self.pid):
            try:
                threads, rss, pss = _status_of(pid)
            except OSError:
                continue  # exited between the scan and the read
            try:
                total.cpu_s += cpu_seconds(pid)
            except OSError:
                pass
            total.processes += 1
            total.threads += threads
            total.rss_kib += rss
            total.pss_kib += pss
        return total

    def start(self) -> "ProcessTreeSampler":
        self.idle = self.sample()
        self.peak = TreeSample(**vars(self.idle))
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            now = self.sample()
            if not now.processes:
                return
            self.last = now
            for name in ("processes", "threads", "rss_kib", "pss_kib"):
                setattr(self.peak, name, max(getattr(self.peak, name), getattr(now, name)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        final = self.sample()
        if final.processes:
            self.last = final

    def cpu_used_s(self) -> float:
        """CPU seconds the tree used from start() to stop()."""
        return self.last.cpu_s - self.idle.cpu_s
