"""FastAGI load: many simulated Asterisk calls against `selfcare serve`, and the same calls
against a trivial asyncio FastAGI server (the ceiling), in one run.

The load generator plays Asterisk's part exactly as a real Asterisk 22 does it
(../shared/fixtures/asterisk-22-fastagi-transcript.txt): it connects, sends the 22 agi_* lines
and an empty line, answers every command in Asterisk's reply forms (`200 result=0 endpos=8000`
after STREAM FILE has "played" for --play-ms, the digit's ASCII code for an escape digit or
WAIT FOR DIGIT, `200 result=1` then the asynchronous bare `HANGUP` line after HANGUP, 510 for
anything it does not know) and waits for the server to close the socket, which Asterisk never
does itself. Each caller hears the figures and presses 9 (goodbye) at the main menu.

Ours is the real thing: `.venv/bin/selfcare --db sqlite:///… serve --processes N` on free
loopback ports (N serving processes sharing the AGI port with SO_REUSEPORT, the worker in the
parent), stopped with SIGTERM. The ceiling runs in its own process; the generator in this one.

Measured: completed calls per second, errors, refused connects, the server's think time per
command (from our reply to its next command; p50/p99), and the serving tree's threads and memory
summed over the parent and its children (max over the run, from /proc: RSS, which counts the
pages forked children share once per process, and PSS, which shares them out).

    .venv/bin/python -m bench.fastagi                        # both scenarios, both servers
    .venv/bin/python -m bench.fastagi --scenario held --calls 4000 --concurrency 2000 --play-ms 1000
    .venv/bin/python -m bench.fastagi --scenario stress --calls 10000 --concurrency 1000 --play-ms 0
    .venv/bin/python -m bench.fastagi --processes 1          # default: one per core
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable

from bench.serving import ProcessTreeSampler, SelfcareServe, load_average, machine

REPO = Path(__file__).resolve().parents[1]
GOODBYE_DIGIT = "9"
MENU_PROMPTS = ("menu-main",)  # the prompts the caller presses GOODBYE_DIGIT at (2112's and 650's)
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
        # The figures may be interrupted too (barge-in): the caller waits for the menu to press.
        if digit and digit in escape and words[2].startswith(MENU_PROMPTS):
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

@dataclass
class Served:
    """A server under test: the process whose tree is sampled, the AGI port, and how to stop it."""

    pid: int
    port: int
    stop: Callable[[], object]
    processes: int = 1
    log_problems: Callable[[], int] = lambda: 0


def start_selfcare(db_url: str, processes: int, log_path: Path) -> Served:
    served = SelfcareServe.start(db_url, processes, log_path)
    return Served(served.process.pid, served.agi_port, served.stop, processes, served.log_problems)


def start_ceiling(script_file: Path) -> Served:
    process = subprocess.Popen([sys.executable, "-m", "bench.fastagi", "serve-ceiling", "--script-file",
                                str(script_file)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise SystemExit(f"the ceiling did not start: {line!r}")

    def stop() -> None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    return Served(process.pid, int(line.split()[1]), stop)


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


def measure(start: Callable[[], Served], callers: list[str], calls: int, concurrency: int, play_s: float,
            record_script: bool) -> dict:
    load_before = load_average()
    served = start()
    sampler = ProcessTreeSampler(served.pid).start()
    try:
        stats, seconds = asyncio.run(run_load(served.port, callers, calls, concurrency, play_s, record_script))
    finally:
        sampler.stop()
        served.stop()
    return {
        "calls": calls, "concurrency": concurrency, "play_ms": int(play_s * 1000),
        "server_processes": served.processes,
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
        "tree_processes": sampler.peak.processes,
        "threads_idle": sampler.idle.threads, "threads_max": sampler.peak.threads,
        "rss_idle_mib": round(sampler.idle.rss_kib / 1024, 1), "rss_max_mib": round(sampler.peak.rss_kib / 1024, 1),
        "pss_max_mib": round(sampler.peak.pss_kib / 1024, 1),
        "server_log_problems": served.log_problems(),
        "load_before": load_before, "load_after": load_average(),
        "script": stats.first_script,
    }


def print_row(name: str, result: dict) -> None:
    print(f"| {name:<30} | {result['completed']:>5}/{result['calls']:<5} | {result['seconds']:>7} | "
          f"{result['calls_per_s']:>7} | {result['errors']:>6} | {result['refused']:>7} | "
          f"{result['think_p50_ms']:>8} | {result['think_p99_ms']:>8} | "
          f"{result['threads_max']:>7} | {result['rss_max_mib']:>7} | {result['pss_max_mib']:>7} | "
          f"{result['load_before']} → {result['load_after']} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="FastAGI load: selfcare serve vs a trivial asyncio server")
    sub = parser.add_subparsers(dest="mode")
    child_ceiling = sub.add_parser("serve-ceiling", help=argparse.SUPPRESS)
    child_ceiling.add_argument("--script-file", required=True)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "both"], default="both")
    parser.add_argument("--calls", type=int, help="override the scenario's number of calls")
    parser.add_argument("--concurrency", type=int, help="override the calls held at once")
    parser.add_argument("--play-ms", type=int, help="override the time each prompt takes to play")
    parser.add_argument("--lines", type=int, default=300, help="distinct prepaid callers (default 300)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="selfcare serve --processes N (default: the core count)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    if args.mode == "serve-ceiling":
        serve_ceiling(args.script_file)
        return 0

    raise_fd_limit()  # the generator's sockets; selfcare serve inherits the limit too
    print(f"machine: {machine()}; load average {load_average()}", flush=True)
    results = {}
    ours_name = f"selfcare serve ×{args.processes}"
    with tempfile.TemporaryDirectory(prefix="bench-fastagi-") as work:
        work_dir = Path(work)
        db_url, callers = make_database(work_dir / "billing.db", args.lines)
        names = list(SCENARIOS) if args.scenario == "both" else [args.scenario]
        print(f"| {'run':<30} | completed   | seconds | calls/s | errors | refused "
              "| think p50 ms | think p99 ms | threads | RSS MiB | PSS MiB | load average before → after |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            calls, concurrency, play_ms = SCENARIOS[name]
            calls = args.calls or calls
            concurrency = args.concurrency or concurrency
            play_s = (args.play_ms if args.play_ms is not None else play_ms) / 1000
            log_path = work_dir / f"serve-{name}.log"
            ours = measure(lambda: start_selfcare(db_url, args.processes, log_path),
                           callers, calls, concurrency, play_s, record_script=True)
            print_row(f"{name}: {ours_name}", ours)
            if ours["server_log_problems"]:
                print(f"{name}: selfcare serve logged {ours['server_log_problems']} warnings/errors; last lines:\n"
                      + "\n".join(log_path.read_text("utf-8", "replace").splitlines()[-10:]), flush=True)
            if not ours["script"]:
                print(f"no call against selfcare serve completed in {name}; no ceiling to compare", flush=True)
                results[name] = {"ours": ours}
                continue
            script_file = work_dir / f"script-{name}.json"
            script_file.write_text(json.dumps(ours["script"]))
            ceiling = measure(lambda: start_ceiling(script_file),
                              callers, calls, concurrency, play_s, record_script=False)
            print_row(f"{name}: asyncio ceiling", ceiling)
            slowest = sorted(ours["think_by_command_ms"].items(), key=lambda item: -item[1]["p99"])[:3]
            print(f"{name}: {ours_name}'s slowest replies (think time before the command, p50/p99 ms): "
                  + "; ".join(f"{kind} {v['p50']}/{v['p99']}" for kind, v in slowest), flush=True)
            ratio = ours["calls_per_s"] / ceiling["calls_per_s"] if ceiling["calls_per_s"] else 0.0
            print(f"{name}: {len(ours['script'])} commands a call; {ours_name} = {ratio:.0%} of the ceiling's "
                  f"call rate", flush=True)
            results[name] = {"ours": ours, "ceiling": ceiling, "ratio": round(ratio, 3)}
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "processes": args.processes, "results": results},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
