"""Log output with no personal number in it, whatever a log call or a traceback carries; plain
lines by default, one JSON object a line with SELFCARE_LOG_FORMAT=json.

Services mask the numbers they log (billing.msisdn.mask), but an exception's message, an AGI
environment line or an idempotency key can carry one too; both formatters run the finished line,
traceback included, through billing.msisdn.mask_numbers.

Each line carries the id of the request or call it was logged for (`request_id`, `call_id`) and the
caller's masked number (`number`), set by the channel adapter with `bound(...)`. The ids are written
as the gateway or PBX gave them, not masked (an Asterisk uniqueid looks like a long number). They live in a
context variable, and are copied onto each record when it is made: `selfcare serve` formats records
later, in its log-writer thread, where the request's context is gone.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os

from billing.errors import InvalidMsisdn
from billing.msisdn import mask, mask_numbers, normalize

FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
FORMAT_ENV = "SELFCARE_LOG_FORMAT"  # "plain" (default) or "json"

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("selfcare_log_context", default={})


@contextlib.contextmanager
def bound(*, number: str | None = None, **ids: str):
    """Within the block, every line logged in this context carries `ids` and the masked `number`."""
    values = {**_context.get(), **{k: v for k, v in ids.items() if v}}
    if number:
        values["number"] = masked_number(number)
    token = _context.set(values)
    try:
        yield
    finally:
        _context.reset(token)


def masked_number(number: str) -> str:
    """The caller's number as the logs show it: E.164, masked (`+99450***4567`), however it was typed."""
    try:
        return mask(normalize(number))
    except InvalidMsisdn:
        return mask_numbers(number[:40])


def current() -> dict:
    return _context.get()


def _with_context(factory):
    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.selfcare = _context.get()
        return record

    make_record.selfcare_context = True
    return make_record


def _capture_context() -> None:
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "selfcare_context", False):
        logging.setLogRecordFactory(_with_context(factory))


class MaskingFormatter(logging.Formatter):
    """The plain line, with the request's ids appended as `key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        line = mask_numbers(super().format(record))
        context = getattr(record, "selfcare", None)
        if context:
            head, newline, rest = line.partition("\n")  # after the message, before a traceback
            line = head + "".join(f" {key}={value}" for key, value in context.items()) + newline + rest
        return line


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time (ISO 8601, UTC), level, logger, pid, message, the request's
    ids and masked number, and `exception` with the traceback when there is one."""
    import structlog

    def from_record(_logger, _name, event_dict):
        record = event_dict["_record"]
        event_dict["logger"] = record.name
        event_dict["pid"] = record.process
        return event_dict

    def formatted_traceback(_logger, _name, event_dict):
        # a traceback formatted already (selfcare serve's log queue); runs before the formatter
        # clears it from the record
        record = event_dict["_record"]
        if record.exc_text and not record.exc_info:
            event_dict["exception"] = record.exc_text
        return event_dict

    def masked(_logger, _name, event_dict):
        return {key: mask_numbers(value) if isinstance(value, str) else value for key, value in event_dict.items()}

    def with_context(_logger, _name, event_dict):
        # after masking: the ids are gateway and PBX ids (an Asterisk uniqueid looks like a long
        # number), and `number` is masked already
        event_dict.update(getattr(event_dict.pop("_context_record"), "selfcare", None) or {})
        return event_dict

    def keep_record(_logger, _name, event_dict):
        event_dict["_context_record"] = event_dict["_record"]
        return event_dict

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[formatted_traceback],
        processors=[
            structlog.stdlib.add_log_level,
            from_record,
            keep_record,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            masked,
            with_context,
            structlog.processors.JSONRenderer(ensure_ascii=False, sort_keys=False),
        ],
    )


def formatter(kind: str | None = None) -> logging.Formatter:
    """The formatter $SELFCARE_LOG_FORMAT (or `kind`) names; an unknown name stops start-up."""
    kind = (kind or os.environ.get(FORMAT_ENV) or "plain").strip().lower()
    if kind == "plain":
        return MaskingFormatter(FORMAT)
    if kind == "json":
        return json_formatter()
    raise ValueError(f"{FORMAT_ENV} must be plain or json, not {kind!r}")


def is_ours(candidate: logging.Formatter | None) -> bool:
    from structlog.stdlib import ProcessorFormatter

    return isinstance(candidate, (MaskingFormatter, ProcessorFormatter))


def configure(level: int | str) -> None:
    """The process's logging: one stream handler on stderr, numbers masked, in the chosen format."""
    _capture_context()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
