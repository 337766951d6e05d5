"""Log output with no personal number in it, whatever a log call or a traceback carries.

Services mask the numbers they log (billing.msisdn.mask), but an exception's message, an AGI
environment line or an idempotency key can carry one too; the formatter masks every Azerbaijani
number in the finished line, traceback included, the same way: `+99450***4567`, `050***4567`.
"""
from __future__ import annotations

import logging
import re

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
_NUMBER = re.compile(r"(?<![\d*])((?:\+?994|0)\d{2})\d{3}(\d{4})(?!\d)")


def mask_numbers(text: str) -> str:
    return _NUMBER.sub(r"\1***\2", text)


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
