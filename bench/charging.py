"""Charges per second through the billing service layer (the same code every channel calls).

    python bench/charging.py [--sqlite PATH] [--pg URL] [--charges N]

Each charge is a real `charge_sms` on its own unit of work: lock the line, claim the idempotency
key, post the ledger entry, update the balance, commit. Lines are spread over 1,000 subscribers.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal

from billing import services
from billing.clock import FixedClock
from billing.core import Core

LINES = 1000


def prepare(url: str) -> Core:
    core = Core(url, clock=FixedClock(datetime(2026, 11, 22, 12)))
    core.upgrade_schema()
    with core.uow() as uow:
        for i in range(LINES):
            services.add_subscriber(uow, f"+99450{i:07d}", "prepaid", balance=Decimal("1000"))
    return core


def run(core: Core, charges: int, threads: int, tag: str) -> float:
    counter = iter(range(charges))
    lock = threading.Lock()

    def worker(_):
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            with core.uow() as uow:
                services.charge_sms(uow, f"+99450{n % LINES:07d}", "2112", key=f"{tag}:{n}")

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return charges / (time.perf_counter() - start)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) // 1024 // 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores, {cpu}, {mem} GiB RAM, Python {platform.python_version()}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=os.environ.get("SELFCARE_BENCH_PG"))
    parser.add_argument("--charges", type=int, default=20000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    targets = [("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db")]
    if args.pg:
        targets.append(("postgresql", args.pg))
    for name, url in targets:
        core = prepare(url)
        for threads in (1, 8):
            rate = run(core, args.charges, threads, f"{name}-{threads}")
            print(f"{name:10} {threads} thread(s): {rate:8.0f} charges/s")
        with core.uow() as uow:
            assert services.audit(uow) == [], "ledger mismatch after the benchmark"
        core.dispose()


if __name__ == "__main__":
    main()
