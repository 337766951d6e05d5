"""A PostgreSQL cluster of our own (initdb + pg_ctl in a temporary folder, on a free loopback port,
run as the postgres user), for drills that stop or restart the database: the shared server that
scripts/test-postgres starts is never touched."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.peers.errors import PeerError
from tests.peers.ports import free_port

DATABASE = "selfcare_drill"


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def available() -> str | None:
    """Why a cluster cannot be made here, or None."""
    if os.geteuid() != 0:
        return "a cluster of our own needs root (to run initdb and pg_ctl as postgres)"
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        return "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
    if shutil.which("runuser") is None:
        return "runuser is missing"
    return None


class OwnCluster:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="selfcare-pg-drill-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        shutil.chown(self.root, "postgres", "postgres")

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise PeerError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> "OwnCluster":
        self._as_postgres(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                          "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            # loopback only, our port, no unix socket in the shared /var/run, small and quick
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                       "max_connections = 300\nfsync = off\nshared_buffers = 32MB\n")
        self.pg_ctl("start")
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
        return self

    def pg_ctl(self, action: str, *extra: str) -> None:
        self._as_postgres(_bin("pg_ctl"), action, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *extra)

    def restart(self, mode: str = "fast") -> float:
        """Restart the server (`fast`: connections are cut, as a failover or an operator's restart
        does; `immediate`: as a crash); returns the seconds it was away."""
        started = time.monotonic()
        self.pg_ctl("restart", "-m", mode)
        return time.monotonic() - started

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
