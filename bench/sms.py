"""SMS round trips per second through a real Kannel (fakesmsc -> bearerbox -> smsbox -> app -> back).

Two runs in one go: our app (each blank SMS to 2112 a real balance lookup and a charge on SQLite),
then a trivial responder behind the same Kannel set-up as the ceiling. Prints both, the ratio, and
lost messages, and checks every charge landed once.

    .venv/bin/python -m bench.sms [--messages 5000] [--lines 200] [--threads 8]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from billing import services
from billing.clock import FixedClock
from billing.core import Core
from billing.models import LedgerEntry
from selfcare.config import Settings
from selfcare.http import create_app
from tests.integration.kannel_peer import AppServer, KannelPeer

SECRET = "bench-secret"


def trivial_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Balance: 1.00 AZN"]


def burst(app, work: Path, msisdns: list[str], count: int, threads: int, timeout_s: float) -> dict:
    server = AppServer(app, threads=threads).start()
    peer = KannelPeer(work, server.port, SECRET, log_level=2)
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
            except Exception:
                continue
            received += 1
            last = time.monotonic()
        elapsed = last - started
        return {"sent": count, "received": received, "lost": count - received, "seconds": elapsed,
                "per_second": received / elapsed if elapsed else 0.0}
    finally:
        peer.stop()
        server.stop()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    except OSError:
        mem_kb = 0
    return f"{os.cpu_count()} cores, {cpu}, {mem_kb / 1024 / 1024:.1f} GiB RAM, {platform.platform()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--lines", type=int, default=200, help="distinct prepaid subscribers sending")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--db", help="SQLAlchemy URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-sms-"))
    core = Core(args.db or f"sqlite:///{work / 'billing.db'}", clock=FixedClock(dt.datetime(2026, 11, 22, 12)))
    core.upgrade_schema()
    msisdns = [f"+99450{7000000 + i:07d}" for i in range(args.lines)]
    for msisdn in msisdns:
        with core.uow() as uow:
            services.add_subscriber(uow, msisdn, "prepaid", balance=Decimal("1000.00"))
    settings = Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token=None,
                        twilio_public_url=None, kannel_secret=SECRET, kannel_allow=("127.0.0.1",))

    ours = burst(create_app(core, settings), work / "ours", msisdns, args.messages, args.threads, args.timeout)
    ceiling = burst(trivial_app, work / "ceiling", msisdns, args.messages, args.threads, args.timeout)

    with core.uow() as uow:
        charges = uow.session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "sms:2112"))
        problems = services.audit(uow)
    print(f"machine: {machine()}")
    for name, run in (("selfcare (lookup + charge)", ours), ("trivial responder (ceiling)", ceiling)):
        print(f"{name:28} {run['received']}/{run['sent']} replies in {run['seconds']:.2f} s = "
              f"{run['per_second']:.0f} round trips/s, lost {run['lost']}")
    ratio = ours["per_second"] / ceiling["per_second"] if ceiling["per_second"] else 0
    print(f"ratio: {ratio:.0%} of the ceiling; charges in the ledger: {charges} "
          f"(expected {ours['received']}); audit: {'clean' if not problems else problems}")
    core.dispose()


if __name__ == "__main__":
    main()
