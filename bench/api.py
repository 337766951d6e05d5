"""Signed-in balance reads per second through the app's API, `GET /api/v1/balance`, served by the
real `selfcare serve`, beside a trivial responder.

Ours: a fresh database (SQLite; PostgreSQL with --pg, a throwaway database dropped after) with
`--lines` prepaid lines, each signed in through billing.signin as the API does it (a code asked
for, read from the outbox, verified), so every request carries another line's bearer token. Then
`selfcare serve` (its default processes, or --processes N) on free loopback ports, and wrk (C,
keep-alive, `--connections` connections over `--wrk-threads` threads) cycling through the tokens
for `--seconds`. Each read is the whole path: the token's digest looked up, the line's figures
from `balance_report`, the JSON body validated and written. The ceiling is the trivial asyncio
HTTP/1.1 keep-alive responder of bench/sms.py under the very same wrk load. Prints the machine,
the load average, reads/s, non-2xx answers and socket errors, and the serving tree's CPU per read.

    .venv/bin/python -m bench.api [--lines 500] [--seconds 10] [--connections 64] [--wrk-threads 2]
        [--processes N] [--pg postgresql://user:pass@127.0.0.1:5432/postgres] [--no-sqlite] [--no-ceiling]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from bench.serving import REPO, cpu_seconds, load_average, machine, process_tree
from bench.sms import Ceiling
from billing import services, signin
from billing.core import Core
from billing.models import OutboxMessage
from selfcare.serve import default_processes, listening_sockets
from tests.peers.ports import free_port

PATH = "/api/v1/balance"
SELFCARE = [sys.executable, "-c", "from selfcare.cli import main; main()"]


def msisdn(line: int) -> str:
    return f"+99450{8100000 + line:07d}"


def seed_and_sign_in(db_url: str, lines: int) -> list[str]:
    """Open the lines and sign each in the way the API does; returns one bearer token per line."""
    core = Core(db_url)
    tokens = []
    try:
        core.upgrade_schema()
        for line in range(lines):
            number = msisdn(line)
            with core.uow() as uow:
                services.add_subscriber(uow, number, "prepaid", balance=Decimal("25.00"), language="en")
            with core.uow() as uow:
                request_id = signin.request_code(uow, number, f"bench-{line}")
            with core.reader() as uow:
                params = uow.session.scalar(select(OutboxMessage.params)
                                            .where(OutboxMessage.key == f"signin:{request_id}"))
            with core.uow() as uow:
                tokens.append(signin.verify_code(uow, request_id, number, json.loads(params)["code"], "api").secret)
    finally:
        core.dispose()
    return tokens


class Serve:
    """`selfcare serve` on free loopback ports; the worker's SMS go to the log transport."""

    def __init__(self, db_url: str, processes: int | None, log_path: Path):
        self.http = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO), "SELFCARE_HTTP": f"127.0.0.1:{self.http}",
               "SELFCARE_AGI": f"127.0.0.1:{free_port()}", "SELFCARE_SMS_TRANSPORT": "log"}
        env.pop("SELFCARE_PROCESSES", None)
        argv = [*SELFCARE, "--db", db_url, "serve"] + (["--processes", str(processes)] if processes else [])
        self.processes = processes or default_processes(db_url)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while listening_sockets(self.http) < self.processes:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"selfcare serve did not start; see {log_path}")
            time.sleep(0.1)

    def cpu_s(self) -> float:
        return sum(cpu_seconds(pid) for pid in process_tree(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


LUA = """
tokens = {%s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "%s", {["Authorization"] = "Bearer " .. tokens[(counter %% #tokens) + 1]})
end
"""


def wrk(port: int, tokens: list[str], seconds: int, connections: int, threads: int, work: Path) -> dict:
    script = work / "tokens.lua"
    script.write_text(LUA % (", ".join(f'"{t}"' for t in tokens), PATH))
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
            f"http://127.0.0.1:{port}{PATH}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    total = int(re.search(r"([0-9]+) requests in", out).group(1))
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: ([0-9]+)", out)) else 0
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) ([0-9]+)", out.split("Socket errors:")[1])
                 ) if "Socket errors:" in out else 0
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    return {"rate": rate, "requests": total, "non_2xx": non_2xx, "errors": errors,
            "latency_avg": latency.group(1), "latency_max": latency.group(3)}


def check_one_read(port: int, token: str) -> dict:
    import urllib.request
    request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def run_ours(label: str, db_url: str, args, work: Path) -> dict:
    tokens = seed_and_sign_in(db_url, args.lines)
    serve = Serve(db_url, args.processes, work / f"serve-{label}.log")
    try:
        figures = check_one_read(serve.http, tokens[0])
        assert figures["balance"] == "25.0000", figures
        wrk(serve.http, tokens, 2, args.connections, args.wrk_threads, work)  # warm up every process
        load_before, cpu_before = load_average(), serve.cpu_s()
        result = wrk(serve.http, tokens, args.seconds, args.connections, args.wrk_threads, work)
        result["cpu_per_read_us"] = (serve.cpu_s() - cpu_before) / max(result["requests"], 1) * 1e6
        result.update(label=label, processes=serve.processes, load=f"{load_before} -> {load_average()}")
        return result
    finally:
        serve.stop()


def run_ceiling(tokens: list[str], args, work: Path) -> dict:
    ceiling = Ceiling()
    try:
        wrk(ceiling.port, tokens, 2, args.connections, args.wrk_threads, work)
        load_before = load_average()
        result = wrk(ceiling.port, tokens, args.seconds, args.connections, args.wrk_threads, work)
        result.update(label="ceiling: trivial asyncio responder", processes=1,
                      load=f"{load_before} -> {load_average()}", cpu_per_read_us=None)
        return result
    finally:
        ceiling.stop()


def show(run: dict, ceiling: float | None = None) -> None:
    ratio = f", {run['rate'] / ceiling:.0%} of the ceiling" if ceiling else ""
    cpu = f", {run['cpu_per_read_us']:.0f} µs serving CPU a read" if run.get("cpu_per_read_us") else ""
    print(f"{run['label']} ({run['processes']} processes): {run['rate']:,.0f} reads/s{ratio}; "
          f"{run['requests']:,} requests, {run['non_2xx']} non-2xx, {run['errors']} socket errors; "
          f"latency avg {run['latency_avg']} max {run['latency_max']}{cpu}; load {run['load']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--pg", default=None, help="PostgreSQL admin URL: a throwaway database is made")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-ceiling", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    print(f"machine: {machine()}; load average {load_average()}; work in {work}", flush=True)
    print(f"wrk: {args.connections} keep-alive connections, {args.wrk_threads} threads, {args.seconds} s, "
          f"{args.lines} tokens in turn", flush=True)
    runs = []
    if not args.no_sqlite:
        runs.append(run_ours("SQLite", f"sqlite:///{work / 'api.db'}", args, work))
        show(runs[-1])
    if args.pg:
        from tests.peers.postgres import ThrowawayDatabases
        databases = ThrowawayDatabases(args.pg)
        try:
            runs.append(run_ours("PostgreSQL", databases.create(), args, work))
            show(runs[-1])
        finally:
            databases.drop_all()
    ceiling = None
    if not args.no_ceiling:
        ceiling = run_ceiling([f"t{i}" for i in range(args.lines)], args, work)
        show(ceiling)
    print("summary:")
    for run in runs:
        show(run, ceiling["rate"] if ceiling else None)
    if ceiling:
        show(ceiling)


if __name__ == "__main__":
    main()
