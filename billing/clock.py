"""Injected time. Every rule that depends on time reads a clock, so tests move it instead of sleeping.

Times are naive datetimes in the operator's local time (Asia/Baku, UTC+4 without DST): the seeds
speak of local wall-clock times ("11 p.m.") and local dates.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

OPERATOR_TZ = ZoneInfo("Asia/Baku")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(OPERATOR_TZ).replace(tzinfo=None, microsecond=0)


class FixedClock:
    """A clock that stands still until a test (or `--now`) moves it."""

    def __init__(self, at: datetime):
        self._at = at
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._at += delta
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = at


def parse_now(text: str) -> datetime:
    """`--now 2026-11-22T23:00` (an offset, if given, is converted to operator time)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(OPERATOR_TZ).replace(tzinfo=None)
    return value
