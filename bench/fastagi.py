"""FastAGI load: many simulated Asterisk calls against our FastAGI server, and the same calls
against a trivial asyncio FastAGI server (the ceiling), in one run.

The load generator plays Asterisk's part exactly as a real Asterisk 22 does it
(../shared/fixtures/asterisk-22-fastagi-transcript.txt): it connects, sends the 22 agi_* lines
and an empty line, answers every command in Asterisk's reply forms (`200 result=0 endpos=8000`
after STREAM FILE has "played" for --play-ms, the digit's ASCII code for an escape digit or
WAIT FOR DIGIT, `200 result=1` then the asynchronous bare `HANGUP` line after HANGUP, 510 for
anything it does not know) and waits for the server to close the socket, which Asterisk never
does itself. Each caller presses 9 (goodbye) at the first menu.

Measured: completed calls per second, errors, refused connects, the server's think time per
command (from our reply to its next command; p50/p99), and the server process's threads and
RSS (max over the run, from /proc). Both servers run in their own process, the generator in
this one.

    .venv/bin/python -m bench.fastagi                        # both scenarios, both servers
    .venv/bin/python -m bench.fastagi --scenario held --calls 4000 --concurrency 2000 --play-ms 1000
    .venv/bin/python -m bench.fastagi --scenario stress --calls 10000 --concurrency 1000 --play-ms 0
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOODBYE_DIGIT = "9"
READ_TIMEOUT_S = 120.0
SCENARIOS = {
    # name: (calls, concurrency, play_ms)
    "held": (4000, 2000, 1000),
    "stress": (10000, 1000, 0),
}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------------------ the simulated Asterisk

def agi_environment(call_number: int, callerid: str, script: str, port: int) -> bytes:
    """The environment Asterisk 22 sends, in its order (transcript section 2, over SIP)."""
    unique = f"1795368771.{call_number}"
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:{port}/{script}",
        f"agi_channel: PJSIP/caller-{call_number:08x}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {unique}",
        "agi_version: 22.10.1+dfsg+~cs6.17.60671434-1",
        f"agi_callerid: {callerid}",
        f"agi_calleridname: {callerid}",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        f"agi_dnid: {script}",
        "agi_rdnis: unknown",
        "agi_context: subscribers",
        f"agi_extension: {script}",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140381501593280",
    ]
    return ("\n".join(lines) + "\n\n").encode()


def asterisk_reply(command: str, play_s: float, digit: str) -> tuple[str, float, bool]:
    """(reply line, seconds to wait before it, whether the channel hangs up after it)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    verb = " ".join(words[:2]).upper()
    if verb.startswith("ANSWER"):
        return "200 result=0", 0.0, False
    if verb == "STREAM FILE":
        escape = words[3] if len(words) > 3 else ""
        if digit and digit in escape:
            return f"200 result={ord(digit)} endpos=4000", play_s / 2, False
        return "200 result=0 endpos=8000", play_s, False
    if verb == "WAIT FOR":  # WAIT FOR DIGIT
        return f"200 result={ord(digit) if digit else 0}", 0.0, False
    if verb == "GET DATA":
        return (f"200 result={digit}" if digit else "200 result= (timeout)"), play_s, False
    if verb in ("SET VARIABLE", "VERBOSE", "NOOP"):
        return "200 result=1", 0.0, False
    if verb in ("GET VARIABLE", "GET FULL"):
        return "200 result=0", 0.0, False
    if verb.startswith("HANGUP"):
        return "200 result=1", 0.0, True
    if verb == "CHANNEL STATUS":
        return "200 result=6", 0.0, False
    return "510 Invalid or unknown command", 0.0, False


def command_kind(command: str) -> str:
    """A command without its varying arguments: 'STREAM FILE welcome-2112', 'SET VARIABLE'."""
    words = command.split()
    if command.upper().startswith("STREAM FILE") and len(words) > 2:
        name = words[2]
        return "STREAM FILE " + (name.split("/")[0] + "/…" if "/" in name else name)
    return " ".join(words[:2])


@dataclass
class LoadStats:
    started: int = 0
    completed: int = 0
    refused: int = 0
    connect_errors: int = 0
    errors: dict = field(default_factory=dict)
    think_s: list = field(default_factory=list)
    think_by_command: dict = field(default_factory=dict)  # "STREAM FILE welcome-2112" -> [s, ...]
    commands: int = 0
    first_script: list | None = None

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def simulated_call(port: int, number: int, callerid: str, script: str, play_s: float,
                         stats: LoadStats, record_script: bool) -> None:
    stats.started += 1
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        stats.refused += 1
        return
    except OSError as why:
        stats.connect_errors += 1
        stats.error(f"connect: {type(why).__name__}")
        return
    digit = GOODBYE_DIGIT
    hung_up = False
    seen: list[str] = []
    try:
        writer.write(agi_environment(number, callerid, script, port))
        await writer.drain()
        last_sent = time.perf_counter()
        while True:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)
            if not line:
                if hung_up:
                    stats.completed += 1
                    if record_script and stats.first_script is None:
                        stats.first_script = seen
                else:
                    stats.error("server closed before HANGUP")
                return
            command = line.decode().rstrip("\n")
            if not hung_up:
                think = time.perf_counter() - last_sent
                stats.think_s.append(think)
                stats.think_by_command.setdefault(command_kind(command), []).append(think)
            stats.commands += 1
            seen.append(command)
            reply, wait_s, hangs_up = asterisk_reply(command, play_s, digit)
            if hung_up and not command.upper().startswith(("GET VARIABLE", "VERBOSE", "NOOP")):
                reply, wait_s = "511 Command Not Permitted on a dead channel or intercept routine", 0.0
            if digit and (reply.startswith(f"200 result={ord(digit)}") or reply == f"200 result={digit}"):
                digit = ""  # one key per call: goodbye
            if wait_s:
                await asyncio.sleep(wait_s)
            writer.write(reply.encode() + b"\n")
            if hangs_up and not hung_up:
                hung_up = True
                writer.write(b"HANGUP\n")  # Asterisk's asynchronous notice after the channel dies
            await writer.drain()
            last_sent = time.perf_counter()
    except asyncio.TimeoutError:
        stats.error("no command for 120 s")
    except (ConnectionResetError, BrokenPipeError):
        stats.error("connection reset")
    except OSError as why:
        stats.error(f"socket: {type(why).__name__}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def run_load(port: int, callers: list[str], calls: int, concurrency: int, play_s: float,
                   record_script: bool = False) -> tuple[LoadStats, float]:
    stats = LoadStats()
    numbers = iter(range(1, calls + 1))

    async def slot() -> None:
        for number in numbers:
            await simulated_call(port, number, callers[number % len(callers)], "2112", play_s, stats,
                                 record_script)

    begin = time.perf_counter()
    await asyncio.gather(*(slot() for _ in range(concurrency)))
    return stats, time.perf_counter() - begin


# ---------------------------------------------------------------------------- servers under test

class ProcessSampler:
    """Max threads and RSS of a process, sampled from /proc every 0.2 s."""

    def __init__(self, pid: int):
        self.pid = pid
        self.max_threads = 0
        self.max_rss_kib = 0
        self.idle_threads = 0
        self.idle_rss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[int, int]:
        threads = rss = 0
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return threads, rss

    def start(self) -> "ProcessSampler":
        self.idle_threads, self.idle_rss_kib = self.sample()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                threads, rss = self.sample()
            except (FileNotFoundError, ProcessLookupError):
                return
            self.max_threads = max(self.max_threads, threads)
            self.max_rss_kib = max(self.max_rss_kib, rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def start_server_process(args: list[str]) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-m", "bench.fastagi", *args], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, int(line.split()[1])


def stop_server_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def serve_ivr(db_url: str, log_file: str, log_level: str = "INFO", log_queue: bool = False) -> None:
    """Child process: our FastAGI server (ivr.fastagi, what `selfcare serve` runs) on a free port."""
    import logging
    import signal

    from billing.core import Core
    from ivr.fastagi import FastAgiServer

    raise_fd_limit()
    logging.basicConfig(filename=log_file, level=getattr(logging, log_level),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if log_queue:
        # call threads only enqueue; one listener thread formats and writes
        import logging.handlers
        import queue

        root = logging.getLogger()
        file_handlers = list(root.handlers)
        records: queue.SimpleQueue = queue.SimpleQueue()
        for handler in file_handlers:
            root.removeHandler(handler)
        root.addHandler(logging.handlers.QueueHandler(records))
        logging.handlers.QueueListener(records, *file_handlers).start()
    core = Core(db_url)
    server = FastAgiServer(core, "127.0.0.1", 0)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop).start())
    print(f"PORT {server.port}", flush=True)
    server.serve_forever()


def serve_ceiling(script_file: str) -> None:
    """Child process: a trivial asyncio FastAGI server sending the same commands as ours did."""
    import signal

    raise_fd_limit()
    script = [line.encode() + b"\n" for line in json.loads(Path(script_file).read_text())]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()).strip():
                pass
            hangup_seen = False
            for command in script:
                writer.write(command)
                await writer.drain()
                reply = await reader.readline()
                if reply.strip() == b"HANGUP":
                    hangup_seen = True
                    await reader.readline()
                    break
            if not hangup_seen:
                # consume Asterisk's HANGUP notice: closing with unread data would send a reset
                await asyncio.wait_for(reader.readline(), 5)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


# --------------------------------------------------------------------------------------- the run

def make_database(path: Path, lines: int) -> tuple[str, list[str]]:
    from billing import services
    from billing.clock import FixedClock
    from billing.core import Core

    url = f"sqlite:///{path}"
    clock = FixedClock(dt.datetime(2026, 11, 22, 12, 0))
    core = Core(url, clock=clock)
    core.upgrade_schema()
    callers = [f"+99450{7000000 + index:07d}" for index in range(lines)]
    for index, msisdn in enumerate(callers):
        with core.uow() as uow:
            services.add_subscriber(uow, msisdn, "prepaid", tariff="klass", language=("az", "en", "ru")[index % 3],
                                    activated=clock.now().date() - dt.timedelta(days=100))
        with core.uow() as uow:
            services.topup(uow, msisdn, Decimal("12.48"), key=f"bench:{msisdn}")
    core.dispose()
    return url, callers


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(server_args: list[str], callers: list[str], calls: int, concurrency: int, play_s: float,
            record_script: bool) -> dict:
    process, port = start_server_process(server_args)
    sampler = ProcessSampler(process.pid).start()
    try:
        stats, seconds = asyncio.run(run_load(port, callers, calls, concurrency, play_s, record_script))
    finally:
        sampler.stop()
        stop_server_process(process)
    return {
        "calls": calls, "concurrency": concurrency, "play_ms": int(play_s * 1000),
        "completed": stats.completed, "seconds": round(seconds, 2),
        "calls_per_s": round(stats.completed / seconds, 1) if seconds else 0.0,
        "errors": sum(stats.errors.values()), "error_kinds": stats.errors,
        "refused": stats.refused, "connect_errors": stats.connect_errors,
        "commands": stats.commands,
        "think_p50_ms": round(percentile(stats.think_s, 0.50) * 1000, 2),
        "think_p99_ms": round(percentile(stats.think_s, 0.99) * 1000, 2),
        "think_max_ms": round(max(stats.think_s, default=0.0) * 1000, 2),
        "think_by_command_ms": {
            kind: {"n": len(values), "p50": round(percentile(values, 0.5) * 1000, 2),
                   "p99": round(percentile(values, 0.99) * 1000, 2)}
            for kind, values in sorted(stats.think_by_command.items())
        },
        "threads_idle": sampler.idle_threads, "threads_max": sampler.max_threads,
        "rss_idle_mib": round(sampler.idle_rss_kib / 1024, 1), "rss_max_mib": round(sampler.max_rss_kib / 1024, 1),
        "script": stats.first_script,
    }


def machine() -> str:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kib = 0
    return (f"nproc {os.cpu_count()}, {model}, {mem_kib / 1024 / 1024:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.2f}")


def print_row(name: str, result: dict) -> None:
    print(f"| {name:<28} | {result['completed']:>5}/{result['calls']:<5} | {result['seconds']:>7} | "
          f"{result['calls_per_s']:>7} | {result['errors']:>6} | {result['refused']:>7} | "
          f"{result['think_p50_ms']:>8} | {result['think_p99_ms']:>8} | "
          f"{result['threads_max']:>7} | {result['rss_max_mib']:>7} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="FastAGI load: our server vs a trivial asyncio one")
    sub = parser.add_subparsers(dest="mode")
    child_ivr = sub.add_parser("serve-ivr", help=argparse.SUPPRESS)
    child_ivr.add_argument("--db", required=True)
    child_ivr.add_argument("--log", required=True)
    child_ivr.add_argument("--log-level", default="INFO")
    child_ivr.add_argument("--log-queue", action="store_true")
    child_ceiling = sub.add_parser("serve-ceiling", help=argparse.SUPPRESS)
    child_ceiling.add_argument("--script-file", required=True)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "both"], default="both")
    parser.add_argument("--calls", type=int, help="override the scenario's number of calls")
    parser.add_argument("--concurrency", type=int, help="override the calls held at once")
    parser.add_argument("--play-ms", type=int, help="override the time each prompt takes to play")
    parser.add_argument("--lines", type=int, default=300, help="distinct prepaid callers (default 300)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--server-log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"],
                        help="logging of our server (to a file); INFO is what `selfcare serve` uses")
    parser.add_argument("--server-log-queue", action="store_true",
                        help="our server logs through a QueueHandler (one writer thread) instead of "
                             "writing from every call thread")
    args = parser.parse_args(argv)

    if args.mode == "serve-ivr":
        serve_ivr(args.db, args.log, args.log_level, args.log_queue)
        return 0
    if args.mode == "serve-ceiling":
        serve_ceiling(args.script_file)
        return 0

    raise_fd_limit()
    print(f"machine: {machine()}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-fastagi-") as work:
        work_dir = Path(work)
        db_url, callers = make_database(work_dir / "billing.db", args.lines)
        names = list(SCENARIOS) if args.scenario == "both" else [args.scenario]
        print("| run                          | completed   | seconds | calls/s | errors | refused "
              "| think p50 ms | think p99 ms | threads | RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            calls, concurrency, play_ms = SCENARIOS[name]
            calls = args.calls or calls
            concurrency = args.concurrency or concurrency
            play_s = (args.play_ms if args.play_ms is not None else play_ms) / 1000
            ours = measure(["serve-ivr", "--db", db_url, "--log", str(work_dir / f"ivr-{name}.log"),
                            "--log-level", args.server_log_level,
                            *(["--log-queue"] if args.server_log_queue else [])],
                           callers, calls, concurrency, play_s, record_script=True)
            print_row(f"{name}: ivr.fastagi", ours)
            if not ours["script"]:
                print(f"no call against ivr.fastagi completed in {name}; no ceiling to compare", flush=True)
                results[name] = {"ours": ours}
                continue
            script_file = work_dir / f"script-{name}.json"
            script_file.write_text(json.dumps(ours["script"]))
            ceiling = measure(["serve-ceiling", "--script-file", str(script_file)],
                              callers, calls, concurrency, play_s, record_script=False)
            print_row(f"{name}: asyncio ceiling", ceiling)
            slowest = sorted(ours["think_by_command_ms"].items(), key=lambda item: -item[1]["p99"])[:3]
            print(f"{name}: ivr.fastagi's slowest replies (think time before the command, p50/p99 ms): "
                  + "; ".join(f"{kind} {v['p50']}/{v['p99']}" for kind, v in slowest), flush=True)
            ratio = ours["calls_per_s"] / ceiling["calls_per_s"] if ceiling["calls_per_s"] else 0.0
            print(f"{name}: {len(ours['script'])} commands a call; ivr.fastagi = {ratio:.0%} of the ceiling's "
                  f"call rate", flush=True)
            results[name] = {"ours": ours, "ceiling": ceiling, "ratio": round(ratio, 3)}
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
