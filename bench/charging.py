"""Charges per second through the billing service layer (the same code every channel calls), beside
the ceiling of the same statements run on the bare driver.

    python bench/charging.py [--pg ADMIN_URL] [--charges N] [--threads 1,8,32] [--only sqlite|postgresql]

Each charge is a real `charge_sms`: lock the line, claim the idempotency key, increment the balance,
write the ledger entry, commit. Lines are spread over 1,000 subscribers. Runs, per database:

- `direct`: each charge on its own unit of work (`with core.uow() as uow: charge_sms(...)`);
- `group commit`: each charge handed to `core.group_commit.submit` with its line, as the SMS and
  USSD services hand theirs, which runs the charges of concurrent callers in one transaction (a
  savepoint each; on PostgreSQL elided, and the batch's lines locked and read at its start) with
  one commit; on PostgreSQL also with the lanes a serving process alone on this box runs;
- the ceiling: the very statements of the code path (the same SQL text) on a bare sqlite3 or psycopg
  connection from one thread, one commit per charge and then 64 charges a commit as group commit
  runs them (SQLite: a savepoint each; PostgreSQL: the 64 lines locked and read in one statement,
  then each claim). No Python of ours runs there, so it is the floor of the cost.

PostgreSQL: `--pg` is an admin URL (a role that may create databases, as `scripts/test-postgres`
prints); the run gets a fresh database, dropped at the end. Every run ends with `audit`.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from datetime import datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import load_average, machine  # noqa: E402
from billing import ledger, lines, services  # noqa: E402
from billing.clock import FixedClock  # noqa: E402
from billing.core import Core  # noqa: E402
from selfcare import serve  # noqa: E402

LINES = 1000
RAW_BATCH = 64
NOW = datetime(2026, 11, 22, 12)


def msisdn(n: int) -> str:
    return f"+99450{n % LINES:07d}"


def prepare(url: str) -> Core:
    core = Core(url, clock=FixedClock(NOW))
    core.upgrade_schema()
    with core.uow() as uow, uow.atomic():
        for i in range(LINES):
            services.add_subscriber(uow, msisdn(i), "prepaid", balance=Decimal("1000"))
    return core


def server_cpu_seconds() -> float | None:
    """CPU time of every PostgreSQL process on this machine (the server shares our two cores)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() not in ("postgres", "postmaster"):
                    continue
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


def through_the_service(core: Core, charges: int, threads: int, tag: str, grouped: bool) -> float:
    counter = iter(range(charges))  # next() on it is atomic (C, under the GIL): no lock to queue on

    def worker(_):
        while True:
            n = next(counter, None)
            if n is None:
                return
            number, key = msisdn(n), f"{tag}:{n}"
            if grouped:
                core.group_commit.submit(lambda uow: services.charge_sms(uow, number, "2112", key), number)
            else:
                with core.uow() as uow:
                    services.charge_sms(uow, number, "2112", key)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return charges / (time.perf_counter() - start)


class BareDriver:
    """The charge path's own statements (their SQL text, rendered for this database) on a bare
    driver connection: the snapshot of the line with its lock, the claim, the increment, the entry
    (on PostgreSQL the last three are the one statement the code path sends)."""

    def __init__(self, core: Core):
        dialect = core.engine.dialect
        self.postgres = dialect.name == "postgresql"
        self.line = lines._ROW_BY_NUMBER_LOCKED.rendered(dialect)
        self.claim = ledger._CLAIM.rendered(dialect)
        self.increment = ledger._INCREMENT["balance"].rendered(dialect)
        self.entry = ledger._ENTRY.rendered(dialect)
        self.claim_and_post = ledger._CLAIM_AND_POST["balance"].rendered(dialect)
        self.take_free = lines._TAKE_FREE.rendered(dialect)
        url = core.engine.url
        if self.postgres:
            import psycopg
            self.connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
        else:
            import sqlite3
            self.connection = sqlite3.connect(url.database, isolation_level=None)
            self.connection.execute("PRAGMA synchronous=NORMAL")
        self.cursor = self.connection.cursor()

    def begin(self):
        if not self.postgres:
            self.cursor.execute("BEGIN IMMEDIATE")  # psycopg begins by itself

    def commit(self):
        if self.postgres:
            self.connection.commit()
        else:
            self.cursor.execute("COMMIT")

    def charge(self, n: int, tag: str, line_id: int | None = None):
        cursor = self.cursor
        if line_id is None:
            cursor.execute(self.line.sql, {"msisdn": msisdn(n)})
            line_id = cursor.fetchall()[0][0]
        params = {"key": f"{tag}:{n}", "kind": "sms:2112", "line_id": line_id, "subscriber_id": line_id,
                  "delta": -200, "account": "balance", "entry_kind": "sms:2112", "created_at": NOW}
        if self.postgres:
            cursor.execute(self.claim_and_post.sql, self.claim_and_post.params(params))
            cursor.fetchall()
            return
        cursor.execute(self.claim.sql, self.claim.params(params))
        params["operation_id"] = cursor.fetchall()[0][0]
        cursor.execute(self.increment.sql, params)
        cursor.fetchall()
        cursor.execute(self.entry.sql, self.entry.params(params))

    def one_commit_each(self, charges: int, tag: str) -> float:
        start = time.perf_counter()
        for n in range(charges):
            self.begin()
            self.charge(n, tag)
            self.commit()
        return charges / (time.perf_counter() - start)

    def batched(self, charges: int, tag: str) -> float:
        start = time.perf_counter()
        for first in range(0, charges, RAW_BATCH):
            self.begin()
            batch = range(first, min(charges, first + RAW_BATCH))
            if self.postgres:  # the lines read and locked in one statement, then one claim each
                numbers = sorted({msisdn(n) for n in batch})
                self.cursor.execute(self.take_free.sql, {"msisdns": numbers, "op_keys": []})
                ids = {row[0]: row[1] for row in self.cursor.fetchall()}
                for n in batch:
                    self.charge(n, tag, ids[msisdn(n)])
            else:
                for n in batch:
                    self.cursor.execute("SAVEPOINT m")
                    self.charge(n, tag)
                    self.cursor.execute("RELEASE SAVEPOINT m")
            self.commit()
        return charges / (time.perf_counter() - start)

    def set_based(self, charges: int, tag: str) -> float:
        """PostgreSQL, 64 a commit, lines read ahead, then the claims, balances and entries of the
        whole batch in one statement over arrays: what the next step would send (not yet the code
        path), measured beside the statement a charge that the code path sends."""
        start = time.perf_counter()
        for first in range(0, charges, RAW_BATCH):
            batch = range(first, min(charges, first + RAW_BATCH))
            self.cursor.execute(self.take_free.sql, {"msisdns": sorted({msisdn(n) for n in batch}), "op_keys": []})
            ids = {row[0]: row[1] for row in self.cursor.fetchall()}
            self.cursor.execute(_SET_BASED_CLAIMS, {"keys": [f"{tag}:{n}" for n in batch],
                                                    "line_ids": [ids[msisdn(n)] for n in batch],
                                                    "deltas": [-200] * len(batch), "now": NOW})
            self.cursor.fetchall()
            self.commit()
        return charges / (time.perf_counter() - start)

    def close(self):
        self.connection.close()


_SET_BASED_CLAIMS = (
    "WITH input AS (SELECT * FROM unnest(CAST(%(keys)s AS text[]), CAST(%(line_ids)s AS bigint[]), "
    "CAST(%(deltas)s AS bigint[])) AS i (key, line_id, delta)), "
    "claimed AS (INSERT INTO operation (key, kind, subscriber_id, created_at) "
    "SELECT key, 'sms:2112', line_id, %(now)s FROM input ON CONFLICT (key) DO NOTHING RETURNING id, key), "
    "moved AS (UPDATE subscriber SET balance_units = balance_units + d.total "
    "FROM (SELECT i.line_id, SUM(i.delta) AS total FROM claimed c JOIN input i ON i.key = c.key GROUP BY i.line_id) d "
    "WHERE subscriber.id = d.line_id RETURNING subscriber.id, subscriber.balance_units), "
    "entry AS (INSERT INTO ledger_entry (operation_id, subscriber_id, account, delta_units, kind, created_at) "
    "SELECT c.id, i.line_id, 'balance', i.delta, 'sms:2112', %(now)s FROM claimed c JOIN input i ON i.key = c.key) "
    "SELECT (SELECT json_agg(json_build_array(key, id)) FROM claimed)::text, "
    "(SELECT json_agg(json_build_array(id, balance_units)) FROM moved)::text")


ONE_CORE = 0  # in place of a lane count: the run of `on_one_core`


@contextmanager
def on_one_core():
    """The threads started meanwhile (the pool's) run on one core only. On these machines (virtual,
    their idle cores halted without polling) waking a thread on the other, idle core costs more than
    the charge it runs: the same charges went a third faster with every thread on one core, and as
    fast when a spinning process at the lowest priority kept the other core awake (bench/README.md).
    A serving process beside Kannel finds both cores busy and gained nothing from it."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def bench(name: str, url: str, args) -> None:
    print(f"{name}: load average {load_average()}", flush=True)
    core = prepare(url)
    if name == "postgresql":
        with core.uow() as uow:
            setting = uow.connection().exec_driver_sql("SHOW synchronous_commit").scalar()
        print(f"  synchronous_commit = {setting}")
    threads = [int(t) for t in args.threads.split(",")]
    runs = [("direct", count, 1) for count in threads[:2]] + [("group commit", count, 1) for count in threads]
    if name == "postgresql":  # as a serving process alone on the box runs it (selfcare.serve.batch_lanes)
        runs.append(("group commit", threads[-1], serve.batch_lanes(1)))
    runs.append(("group commit", threads[-1], ONE_CORE))
    for label, count, lanes in runs:
        grouped = label == "group commit"
        one_core = lanes == ONE_CORE
        lanes = 1 if one_core else lanes
        core.group_commit.set_lanes(lanes)
        before = (core.group_commit.batches, core.group_commit.members)
        cpu, server = time.process_time(), server_cpu_seconds() if name == "postgresql" else 0
        with on_one_core() if one_core else nullcontext():
            rate = through_the_service(core, args.charges, count, f"{name}-{label}-{count}-{lanes}-{one_core}",
                                       grouped)
        cpu = (time.process_time() - cpu) / args.charges * 1e6
        server = (server_cpu_seconds() - server) / args.charges * 1e6 if name == "postgresql" else None
        batches = core.group_commit.batches - before[0]
        shape = f", {(core.group_commit.members - before[1]) / batches:.1f} a commit" if batches else ""
        where = f"CPU/charge: ours {cpu:.0f} us" + (f", server {server:.0f} us" if server is not None else "")
        lanes_shown = f", {lanes} lanes" if lanes > 1 else ", the process on one core" if one_core else ""
        print(f"  {label:13} {count:2} thread(s){lanes_shown}: {rate:8.0f} charges/s   ({where}{shape}; "
              f"load {load_average()})", flush=True)
    raw = BareDriver(core)
    try:
        print(f"  ceiling, bare driver, one commit per charge: {raw.one_commit_each(args.charges, 'raw1'):8.0f} charges/s")
        shape = "lines read ahead" if name == "postgresql" else "savepoints"
        print(f"  ceiling, bare driver, {RAW_BATCH} a commit ({shape}): {raw.batched(args.charges, 'rawb'):8.0f} charges/s")
        if name == "postgresql":
            print(f"  next step, bare driver, {RAW_BATCH} a commit in one statement (set-based): "
                  f"{raw.set_based(args.charges, 'raws'):8.0f} charges/s")
    finally:
        raw.close()
    with core.reader() as uow:
        assert services.audit(uow) == [], "ledger mismatch after the benchmark"
    core.dispose()
    print(f"  audit clean; load average {load_average()}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=os.environ.get("SELFCARE_BENCH_PG"), help="admin URL of a PostgreSQL")
    parser.add_argument("--charges", type=int, default=20000)
    parser.add_argument("--threads", default="1,8,32", help="thread counts (direct runs the first two)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.only != "postgresql":
        bench("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db", args)
    if args.pg and args.only != "sqlite":
        from tests.peers.postgres import ThrowawayDatabases

        databases = ThrowawayDatabases(args.pg, prefix="bench_charging")
        try:
            bench("postgresql", databases.create(), args)
        finally:
            databases.drop_all()


if __name__ == "__main__":
    main()
