"""SMS round trips per second through a real Kannel (fakesmsc -> bearerbox -> smsbox -> app -> back).

Ours is the real thing: `.venv/bin/selfcare --db URL serve --processes N` on free loopback ports,
Kannel's get-url pointing at its HTTP port, each blank SMS to 2112 a real balance lookup and a
charge. It runs once per database and process count asked for (SQLite always; PostgreSQL with
--pg, in a fresh database made for the run and dropped after), each on a fresh database. Then a
trivial responder under waitress behind the same Kannel set-up is the ceiling. Prints each run,
its ratio to the ceiling, lost messages, and checks every charge landed once (ledger + audit).

    .venv/bin/python -m bench.sms [--messages 5000] [--lines 200] [--processes 1,2]
        [--pg postgresql://user:pass@127.0.0.1:5432/postgres]
"""
from __future__ import annotations

import argparse
import datetime as dt
import queue
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from bench.serving import ProcessTreeSampler, SelfcareServe, load_average, machine
from billing import services
from billing.clock import FixedClock
from billing.core import Core
from billing.models import LedgerEntry
from tests.peers.app_server import AppServer
from tests.peers.kannel import KannelPeer
from tests.peers.postgres import ThrowawayDatabases

SECRET = "bench-secret"


def trivial_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Balance: 1.00 AZN"]


def burst(app_port: int, work: Path, msisdns: list[str], count: int, timeout_s: float) -> dict:
    """`count` blank SMS to 2112 from fakesmsc at once; the clock runs until the last reply arrives."""
    peer = KannelPeer(work, app_port, SECRET, log_level=2)
    try:
        peer.start(fakesmsc=False)
        messages = [f"{m} 2112 text " for m in msisdns]
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
        return {"sent": count, "received": received, "lost": count - received, "seconds": elapsed,
                "per_second": received / elapsed if elapsed else 0.0}
    finally:
        peer.stop()


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

def run_ours(label: str, db_url: str, processes: int, work: Path, msisdns: list[str], args) -> dict:
    seed(db_url, msisdns)
    load_before = load_average()
    served = SelfcareServe.start(db_url, processes, work / "serve.log",
                                 env={"SELFCARE_KANNEL_SECRET": SECRET, "SELFCARE_KANNEL_ALLOW": "127.0.0.1"})
    sampler = ProcessTreeSampler(served.process.pid).start()
    try:
        result = burst(served.http_port, work / "kannel", msisdns, args.messages, args.timeout)
    finally:
        sampler.stop()
        returncode = served.stop()
    charges, problems = ledger_check(db_url)
    result.update(label=label, processes=processes, charges=charges, audit=problems or "clean",
                  serve_exit=returncode, log_problems=served.log_problems(),
                  queue_depth_warnings=served.queue_depth_warnings(),
                  threads_max=sampler.peak.threads, rss_max_mib=round(sampler.peak.rss_kib / 1024, 1),
                  pss_max_mib=round(sampler.peak.pss_kib / 1024, 1),
                  load_before=load_before, load_after=load_average())
    return result


def run_ceiling(work: Path, msisdns: list[str], args) -> dict:
    load_before = load_average()
    server = AppServer(trivial_app, threads=args.threads).start()
    try:
        result = burst(server.port, work / "kannel", msisdns, args.messages, args.timeout)
    finally:
        server.stop()
    result.update(label="trivial responder (ceiling)", load_before=load_before, load_after=load_average())
    return result


def print_run(run: dict, ceiling: dict | None = None) -> None:
    line = (f"{run['label']:38} {run['received']}/{run['sent']} replies in {run['seconds']:.2f} s = "
            f"{run['per_second']:.0f} round trips/s, lost {run['lost']}")
    if ceiling and ceiling["per_second"]:
        line += f", {run['per_second'] / ceiling['per_second']:.0%} of the ceiling"
    if "charges" in run:
        line += (f"; ledger {run['charges']} charges for {run['received']} replies, audit {run['audit']}; "
                 f"tree max {run['threads_max']} threads, RSS {run['rss_max_mib']} MiB, PSS {run['pss_max_mib']} MiB; "
                 f"serve exit {run['serve_exit']}, {run['log_problems']} warning/error lines "
                 f"(+{run['queue_depth_warnings']} waitress queue-depth warnings)")
    line += f"; load average {run['load_before']} → {run['load_after']}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--lines", type=int, default=200, help="distinct prepaid subscribers sending")
    parser.add_argument("--processes", default="1,2",
                        help="comma-separated `selfcare serve --processes` values to measure (default 1,2)")
    parser.add_argument("--pg", help="a PostgreSQL admin URL that may CREATE DATABASE: also measure there")
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads of the ceiling (serve's own: 8)")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",") if n.strip()]

    work = Path(tempfile.mkdtemp(prefix="bench-sms-"))
    msisdns = [f"+99450{7000000 + i:07d}" for i in range(args.lines)]
    print(f"machine: {machine()}; load average {load_average()}; work in {work}", flush=True)
    postgres = ThrowawayDatabases(args.pg, prefix="bench_sms") if args.pg else None
    runs = []
    try:
        if not args.no_sqlite:
            for n in counts:
                run_dir = work / f"sqlite-{n}"
                run_dir.mkdir()
                runs.append(run_ours(f"selfcare serve ×{n}, SQLite", f"sqlite:///{run_dir / 'billing.db'}", n,
                                     run_dir, msisdns, args))
                print_run(runs[-1])
        if postgres:
            for n in counts:
                run_dir = work / f"pg-{n}"
                run_dir.mkdir()
                runs.append(run_ours(f"selfcare serve ×{n}, PostgreSQL", postgres.create(), n, run_dir, msisdns,
                                     args))
                print_run(runs[-1])
    finally:
        if postgres:
            postgres.drop_all()
    ceiling_dir = work / "ceiling"
    ceiling_dir.mkdir()
    ceiling = run_ceiling(ceiling_dir, msisdns, args)
    print_run(ceiling)
    print("summary:")
    for run in runs:
        print_run(run, ceiling)
    print_run(ceiling)


if __name__ == "__main__":
    main()
