"""SQLite's one writer, queued without polling.

SQLite lets one transaction write at a time. When a writer finds the database locked, SQLite's
busy handler sleeps and retries (1, 2, 5, 10 … ms): under a burst most of the time goes to
sleeping. Writers here queue instead, on a lock that wakes the next one the moment the last one
finishes: a thread lock inside the process and an exclusive `flock` on a file beside the database
across processes (`selfcare serve --processes N`).
"""
from __future__ import annotations

import fcntl
import os
import threading


class SqliteWriteLock:
    def __init__(self, database_path: str | None):
        # No file for an in-memory database: one process is all there can be.
        self._path = f"{database_path}.writelock" if database_path else None
        self._threads = threading.RLock()
        self._local = threading.local()
        self._fd: int | None = None
        self._fd_pid: int | None = None

    def _file(self) -> int:
        # A forked process must not share the parent's open file: flock belongs to the open file.
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        self._threads.acquire()
        depth = getattr(self._local, "depth", 0)
        if depth == 0 and self._path:
            try:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._local.depth = depth + 1

    def release(self) -> None:
        self._local.depth -= 1
        if self._local.depth == 0 and self._path:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        self._threads.release()
