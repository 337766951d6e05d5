from datetime import datetime

from billing import clock as clock_module
from billing.clock import SystemClock

AT_20_UTC = 1796241600  # 2026-12-02 20:00:00 UTC: midnight in Baku (UTC+4)


def test_the_system_clock_reads_operator_time_to_the_second(monkeypatch):
    now = [AT_20_UTC + 0.25]
    monkeypatch.setattr(clock_module.time, "time", lambda: now[0])
    clock = SystemClock()
    assert clock.now() == datetime(2026, 12, 3, 0, 0, 0)
    now[0] = AT_20_UTC + 0.99  # the same second: the same time
    assert clock.now() == datetime(2026, 12, 3, 0, 0, 0)
    now[0] = AT_20_UTC + 1.0
    assert clock.now() == datetime(2026, 12, 3, 0, 0, 1)
    now[0] = AT_20_UTC - 1.5  # a clock stepped back is followed, not held
    assert clock.now() == datetime(2026, 12, 2, 23, 59, 58)


def test_the_system_clock_agrees_with_the_zone():
    before = datetime.now(clock_module.OPERATOR_TZ).replace(tzinfo=None, microsecond=0)
    read = SystemClock().now()
    after = datetime.now(clock_module.OPERATOR_TZ).replace(tzinfo=None, microsecond=0)
    assert before <= read <= after and read.microsecond == 0
