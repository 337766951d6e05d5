"""Log output with no personal number in it, whatever a log call or a traceback carries.

Services mask the numbers they log (billing.msisdn.mask), but an exception's message, an AGI
environment line or an idempotency key can carry one too; the formatter runs the finished line,
traceback included, through billing.msisdn.mask_numbers.
"""
from __future__ import annotations

import logging

from billing.msisdn import mask_numbers

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_numbers(super().format(record))


def configure(level: int) -> None:
    """The process's logging: one stream handler on stderr, numbers masked."""
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
