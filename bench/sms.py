"""SMS round trips per second through a real Kannel (fakesmsc -> bearerbox -> smsbox -> app -> back).

Ours is the real thing: `.venv/bin/selfcare --db URL serve` on free loopback ports, Kannel's
get-url pointing at its HTTP port, each blank SMS to 2112 a real balance lookup and a charge. It
runs once per configuration asked for (`default`: `selfcare serve` as it starts with no option,
behind Kannel's default pool of 512 pending requests; `production`: the settings
docs/operations.md recommends) and per database (SQLite always; PostgreSQL with --pg, in a fresh
database made for the run and dropped after), each on a fresh database. The ceiling is a trivial
asyncio HTTP/1.1 keep-alive responder (one process, no framework) behind the same Kannel set-up,
measured with each Kannel pool size the runs used. Prints each run, its ratio to the best ceiling,
lost messages, and checks every charge landed once (ledger + audit).

    .venv/bin/python -m bench.sms [--messages 5000] [--lines 200] [--configs default,production]
        [--pg postgresql://user:pass@127.0.0.1:5432/postgres] [--no-sqlite] [--no-ceiling]
        [--processes N --http-threads N --kannel-pending N]   (an extra `custom` run)
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import queue
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from bench.serving import REPO, ProcessTreeSampler, SelfcareServe, cpu_seconds, load_average, machine, machine_busy
from billing import services
from billing.clock import FixedClock
from billing.core import Core
from billing.models import LedgerEntry
from tests.peers.kannel import KannelPeer
from tests.peers.postgres import ThrowawayDatabases

SECRET = "bench-secret"
KANNEL_DEFAULT_PENDING = 512  # smsbox's max-pending-requests when the config does not say


@dataclass(frozen=True)
class Config:
    """How `selfcare serve` and smsbox are set up for a run."""

    name: str
    processes: int | None = None  # None: serve's default (per core, by database)
    env: dict = field(default_factory=dict)
    kannel_pending: int = KANNEL_DEFAULT_PENDING

    def describe(self) -> str:
        parts = [f"--processes {self.processes}" if self.processes else "default processes"]
        parts += [f"{k}={v}" for k, v in self.env.items()]
        parts.append(f"Kannel max-pending-requests {self.kannel_pending}")
        return ", ".join(parts)


CONFIGS = {
    # `selfcare serve` with nothing set, behind Kannel with nothing set
    "default": Config("default"),
    # docs/operations.md: what we recommend (serve's defaults, smsbox's pool of 64 connections)
    "production": Config("production", kannel_pending=64),
}


# -------------------------------------------------------------------------------- the ceiling

async def _respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = b"Balance: 1.00 AZN"
    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
             + str(len(body)).encode() + b"\r\n\r\n" + body)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lowered = head.lower()
            if b"content-length:" in lowered:
                length = int(lowered.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
            writer.write(reply)
            if b"connection: close" in lowered:
                await writer.drain()
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


def serve_ceiling() -> None:
    """Child process: the trivial asyncio HTTP/1.1 keep-alive responder; prints its port."""

    async def main() -> None:
        server = await asyncio.start_server(_respond, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


class Ceiling:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "bench.sms", "serve-ceiling"], cwd=REPO,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise SystemExit(f"the ceiling did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


# ------------------------------------------------------------------------------------ a burst

def burst(app_port: int, work: Path, msisdns: list[str], count: int, timeout_s: float, pending: int) -> dict:
    """`count` blank SMS to 2112 from fakesmsc at once; the clock runs until the last reply arrives."""
    peer = KannelPeer(work, app_port, SECRET, log_level=2, max_pending=pending)
    try:
        peer.start(fakesmsc=False)
        messages = [f"{m} 2112 text " for m in msisdns]
        busy_before, total_before = machine_busy()
        kannel_before = sum(_cpu_or_zero(proc.pid) for proc in peer._procs)
        started = time.monotonic()
        peer.start_fakesmsc(messages, count=count)
        received, last = 0, started
        deadline = started + timeout_s
        while received < count and time.monotonic() < deadline:
            try:
                peer.received.get(timeout=max(0.01, min(2.0, deadline - time.monotonic())))
            except queue.Empty:
                continue
            received += 1
            last = time.monotonic()
        elapsed = last - started
        busy, total = machine_busy()
        kannel_cpu = sum(_cpu_or_zero(proc.pid) for proc in peer._procs) - kannel_before
        return {"sent": count, "received": received, "lost": count - received, "seconds": round(elapsed, 2),
                "per_second": round(received / elapsed, 1) if elapsed else 0.0, "kannel_pending": pending,
                "machine_busy": round((busy - busy_before) / max(total - total_before, 1e-9), 2),
                "kannel_cpu_ms_per_sms": round(kannel_cpu * 1000 / max(received, 1), 3)}
    finally:
        peer.stop()


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------------- databases

def seed(db_url: str, msisdns: list[str]) -> None:
    core = Core(db_url, clock=FixedClock(dt.datetime(2026, 11, 22, 12)))
    try:
        core.upgrade_schema()
        for msisdn in msisdns:
            with core.uow() as uow:
                services.add_subscriber(uow, msisdn, "prepaid", balance=Decimal("1000.00"))
    finally:
        core.dispose()


def ledger_check(db_url: str) -> tuple[int, list]:
    """(sms:2112 charges in the ledger, audit problems)."""
    core = Core(db_url)
    try:
        with core.uow() as uow:
            charges = uow.session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "sms:2112"))
            problems = services.audit(uow)
        return charges, problems
    finally:
        core.dispose()


# ------------------------------------------------------------------------------------ the runs

def reference_rate(db_url: str, msisdns: list[str], count: int = 1000) -> float:
    """SMS/s of `handle_sms` called in a loop in this process (one thread, no HTTP, no Kannel) on
    a database seeded like the run's: what the billing path alone allows one core right now."""
    from sms.service import handle_sms

    seed(db_url, msisdns)
    core = Core(db_url, clock=FixedClock(dt.datetime(2026, 11, 22, 12)))
    try:
        started = time.perf_counter()
        for number in range(count):
            handle_sms(core, msisdns[number % len(msisdns)], "2112", "", f"kannel:reference-{number}")
        return count / (time.perf_counter() - started)
    finally:
        core.dispose()


def run_ours(label: str, db_url: str, config: Config, work: Path, msisdns: list[str], args,
             reference_url: str | None = None) -> dict:
    reference = reference_rate(reference_url, msisdns) if reference_url else None
    seed(db_url, msisdns)
    load_before = load_average()
    served = SelfcareServe.start(db_url, config.processes, work / "serve.log",
                                 env={"SELFCARE_KANNEL_SECRET": SECRET, "SELFCARE_KANNEL_ALLOW": "127.0.0.1",
                                      **config.env})
    sampler = ProcessTreeSampler(served.process.pid).start()
    try:
        result = burst(served.http_port, work / "kannel", msisdns, args.messages, args.timeout,
                       config.kannel_pending)
    finally:
        sampler.stop()
        returncode = served.stop()
    charges, problems = ledger_check(db_url)
    result.update(label=label, config=config.describe(), processes=served.processes, charges=charges,
                  audit=problems or "clean", serve_exit=returncode, log_problems=served.log_problems(),
                  serve_cpu_ms_per_sms=round(sampler.cpu_used_s() * 1000 / max(result["received"], 1), 3),
                  threads_max=sampler.peak.threads, rss_max_mib=round(sampler.peak.rss_kib / 1024, 1),
                  pss_max_mib=round(sampler.peak.pss_kib / 1024, 1),
                  load_before=load_before, load_after=load_average())
    if reference is not None:
        result["reference"] = round(reference, 1)
    return result


def run_ceiling(work: Path, msisdns: list[str], pending: int, args) -> dict:
    load_before = load_average()
    ceiling = Ceiling()
    try:
        result = burst(ceiling.port, work / "kannel", msisdns, args.messages, args.timeout, pending)
    finally:
        ceiling.stop()
    result.update(label=f"asyncio responder (ceiling), Kannel pool {pending}", load_before=load_before,
                  load_after=load_average())
    return result


def print_run(run: dict, ceiling: float | None = None) -> None:
    line = (f"{run['label']:48} {run['received']}/{run['sent']} replies in {run['seconds']:.2f} s = "
            f"{run['per_second']:.0f} round trips/s, lost {run['lost']}")
    if ceiling:
        line += f", {run['per_second'] / ceiling:.0%} of the ceiling"
    if "charges" in run:
        line += (f"; ledger {run['charges']} charges for {run['received']} replies, audit {run['audit']}; "
                 f"tree max {run['threads_max']} threads, RSS {run['rss_max_mib']} MiB, PSS {run['pss_max_mib']} MiB; "
                 f"serve exit {run['serve_exit']}, {run['log_problems']} warning/error lines; {run['config']}; "
                 f"CPU per SMS: serve {run['serve_cpu_ms_per_sms']} ms")
    line += f", Kannel {run['kannel_cpu_ms_per_sms']} ms; machine busy {run['machine_busy']:.0%}"
    if "reference" in run:
        line += f"; the billing path alone (handle_sms, one thread, in-process) {run['reference']:.0f}/s"
    line += f"; load average {run['load_before']} → {run['load_after']}"
    print(line, flush=True)


def main() -> None:
    if sys.argv[1:2] == ["serve-ceiling"]:
        serve_ceiling()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--lines", type=int, default=200, help="distinct prepaid subscribers sending")
    parser.add_argument("--configs", default="default,production",
                        help=f"comma-separated, of {', '.join(CONFIGS)} (default: both)")
    parser.add_argument("--processes", type=int, help="an extra `custom` run: selfcare serve --processes N")
    parser.add_argument("--http-threads", type=int, help="custom run: SELFCARE_HTTP_THREADS")
    parser.add_argument("--kannel-pending", type=int, help="custom run: smsbox max-pending-requests")
    parser.add_argument("--pg", help="a PostgreSQL admin URL that may CREATE DATABASE: also measure there")
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    configs = [CONFIGS[name] for name in args.configs.split(",") if name.strip()]
    if args.processes or args.http_threads or args.kannel_pending:
        configs.append(Config("custom", processes=args.processes,
                              env={"SELFCARE_HTTP_THREADS": str(args.http_threads)} if args.http_threads else {},
                              kannel_pending=args.kannel_pending or KANNEL_DEFAULT_PENDING))

    work = Path(tempfile.mkdtemp(prefix="bench-sms-"))
    msisdns = [f"+99450{7000000 + i:07d}" for i in range(args.lines)]
    print(f"machine: {machine()}; load average {load_average()}; work in {work}", flush=True)
    postgres = ThrowawayDatabases(args.pg, prefix="bench_sms") if args.pg else None
    runs = []
    try:
        for config in configs:
            if not args.no_sqlite:
                run_dir = work / f"sqlite-{config.name}"
                run_dir.mkdir()
                runs.append(run_ours(f"selfcare serve {config.name}, SQLite", f"sqlite:///{run_dir / 'billing.db'}",
                                     config, run_dir, msisdns, args,
                                     reference_url=f"sqlite:///{run_dir / 'reference.db'}"))
                print_run(runs[-1])
            if postgres:
                run_dir = work / f"pg-{config.name}"
                run_dir.mkdir()
                runs.append(run_ours(f"selfcare serve {config.name}, PostgreSQL", postgres.create(), config,
                                     run_dir, msisdns, args, reference_url=postgres.create()))
                print_run(runs[-1])
    finally:
        if postgres:
            postgres.drop_all()
    ceilings = []
    if not args.no_ceiling:
        for pending in sorted({config.kannel_pending for config in configs}):
            ceiling_dir = work / f"ceiling-{pending}"
            ceiling_dir.mkdir()
            ceilings.append(run_ceiling(ceiling_dir, msisdns, pending, args))
            print_run(ceilings[-1])
    best = max((c["per_second"] for c in ceilings), default=None)
    print("summary:")
    for run in runs:
        print_run(run, best)
    for ceiling in ceilings:
        print_run(ceiling)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "runs": runs, "ceilings": ceilings}, indent=2))


if __name__ == "__main__":
    main()
