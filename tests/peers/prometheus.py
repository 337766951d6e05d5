"""A real Prometheus (Debian's `prometheus` package) scraping our `/metrics`: started from a
generated config on a free loopback port with its storage in a temporary directory, asked through
its HTTP API (`/api/v1/query`), stopped by its process id."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.peers.errors import PeerError
from tests.peers.ports import free_port

BINARY = "prometheus"
READY_TIMEOUT_S = 30.0


def binary() -> str | None:
    return shutil.which(BINARY)


class PrometheusError(PeerError):
    pass


def scrape_config(targets: list[str], interval_s: float) -> str:
    """The config the harness starts from: one job scraping `targets` (host:port) at `/metrics`."""
    return "\n".join([
        "global:",
        f"  scrape_interval: {interval_s}s",
        f"  scrape_timeout: {interval_s}s",
        "scrape_configs:",
        "  - job_name: selfcare",
        "    metrics_path: /metrics",
        "    static_configs:",
        f"      - targets: [{', '.join(repr(t) for t in targets)}]",
        "",
    ])


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str], interval_s: float = 1.0):
        self.workdir = Path(workdir)
        self.targets = targets
        self.interval_s = interval_s
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Prometheus":
        path = binary()
        if path is None:
            raise PrometheusError("prometheus is not installed (scripts/install-deps installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(scrape_config(self.targets, self.interval_s))
        (self.workdir / "data").mkdir(exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [path, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.process.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready after {READY_TIMEOUT_S:.0f} s: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as answer:
            body = json.load(answer)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's vector: [{"metric": {labels}, "value": [time, "text"]}, ...]."""
        return self._api("/api/v1/query", query=expr)["result"]

    def values(self, expr: str, *by: str) -> dict:
        """{(label values in `by` order): float} of an instant query."""
        return {tuple(row["metric"].get(label, "") for label in by): float(row["value"][1])
                for row in self.query(expr)}

    def targets_up(self) -> list[dict]:
        return [t for t in self._api("/api/v1/targets")["activeTargets"] if t.get("health") == "up"]

    def wait_for(self, expr: str, expected, *by: str, timeout_s: float = 20.0):
        """Query until the answer equals `expected` (a scrape or two after the load); the last
        answer either way, so the caller's assertion shows what Prometheus held."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.values(expr, *by)
            if got == expected or time.monotonic() > deadline:
                return got
            time.sleep(self.interval_s / 2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def __enter__(self) -> "Prometheus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
