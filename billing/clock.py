"""Injected time. Every rule that depends on time reads a clock, so tests move it instead of sleeping.

Times are naive datetimes in the operator's local time (Asia/Baku, UTC+4 without DST): the seeds
speak of local wall-clock times ("11 p.m.") and local dates.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

OPERATOR_TZ = ZoneInfo("Asia/Baku")


class SystemClock:
    """The operator's wall clock, to the second. The time of the current second is kept: a charge
    reads the clock five times, and converting to the zone each time was 3.5% of a serving
    process's CPU an SMS (py-spy, bench/README.md)."""

    def __init__(self) -> None:
        self._second: tuple[int, datetime] = (-1, datetime.min)

    def now(self) -> datetime:
        second = int(time.time())
        kept = self._second  # one tuple read and one written: threads share it without a lock
        if kept[0] != second:
            kept = (second, datetime.fromtimestamp(second, OPERATOR_TZ).replace(tzinfo=None))
            self._second = kept
        return kept[1]


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
