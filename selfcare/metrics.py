"""Every Prometheus metric of the platform, and `GET /metrics`.

The channels count what they answered (counters and histograms: a few microseconds, no database);
what only the database knows (the outbox's backlog and the age of its oldest message) is read
when Prometheus scrapes. Billing knows nothing of this module: the charge-commit timing reaches it
through `GroupCommitter.on_batch` and database errors through SQLAlchemy's `handle_error` event,
both wired by `instrument_core`.

Under `selfcare serve` several processes count: prometheus-client's multiprocess mode keeps each
process's values in files under $PROMETHEUS_MULTIPROC_DIR and a scrape of any serving process sums
them. Serve sets that directory up before it forks and before this module is imported
(`selfcare.serve.use_metrics_dir`): the library picks its value storage when it is imported.

Label values come from short fixed lists (short numbers, USSD actions, IVR services, outcome
names): a label taken from what a subscriber typed would let anyone grow the series without bound.
"""
from __future__ import annotations

import functools
import os
import time

from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# -- what the channels answered ------------------------------------------------------------------

REQUESTS = Counter(
    "selfcare_requests", "Requests answered, by channel (sms, ussd, ivr), service (short number, USSD "
    "action, IVR service) and outcome (the answer given; `error` when it failed, `retry` when answered from memory)",
    ["channel", "service", "outcome"])
CHARGES = Counter("selfcare_charges", "Requests that took a fee", ["channel", "service"])
CHARGED_AZN = Counter("selfcare_charged_azn", "Fees taken, in AZN (for graphs: the ledger is the record)",
                      ["channel", "service"])
REFUSALS = Counter("selfcare_refusals", "Requests refused with a reason (balance too low, line barred, ...)",
                   ["channel", "service", "reason"])
SMS_REQUEST_SECONDS = Histogram(
    "selfcare_sms_request_seconds", "Time to answer an SMS webhook, charge included", ["gateway"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
AGI_THINK_SECONDS = Histogram(
    "selfcare_agi_think_seconds", "From a FastAGI reply read to our next command sent (the caller waits)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
LIVE_CALLS = Gauge("selfcare_live_calls", "FastAGI calls in progress", multiprocess_mode="livesum")

# -- billing and the database -----------------------------------------------------------------------

CHARGE_COMMIT_SECONDS = Histogram(
    "selfcare_charge_commit_seconds", "A group-commit batch of writes (charges among them), BEGIN to COMMIT",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
DATABASE_ERRORS = Counter("selfcare_database_errors", "Errors the database driver raised, by class", ["error"])

# -- the worker --------------------------------------------------------------------------------------

DELIVERY_FAILURES = Counter(
    "selfcare_delivery_failures", "Outbound SMS the transport refused (retried later) or a delivery report "
    "said failed", ["transport", "reason"])
AUDIT_MISMATCHES = Gauge("selfcare_audit_mismatches", "Accounts whose balance differs from their ledger at the "
                         "last audit (0 = clean)", multiprocess_mode="mostrecent")
AUDIT_LAST_RUN = Gauge("selfcare_audit_last_run_timestamp_seconds", "When the worker last finished an audit",
                       multiprocess_mode="mostrecent")
AUDIT_FAILED = Gauge("selfcare_audit_failed", "1 when the last audit found a mismatch or could not run",
                     multiprocess_mode="mostrecent")

# read at scrape time (DatabaseCollector)
OUTBOX_BACKLOG = "selfcare_outbox_backlog"
TWILIO_LIVE_CALLS = "selfcare_twilio_live_calls"
OUTBOX_OLDEST_AGE_SECONDS = "selfcare_outbox_oldest_age_seconds"


@functools.lru_cache(maxsize=4096)
def labelled(metric, **labels):
    """`metric.labels(**labels)`, looked up once: prometheus-client checks and locks on every
    `labels()` call (measured: 6 µs of the 8 a labelled increment took). Label values come from
    fixed lists, so the cache stays small."""
    return metric.labels(**labels)


def process_exited(pid: int) -> None:
    """A serving process ended: its live gauges (live calls) stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# -- wiring billing's hooks -------------------------------------------------------------------------

def instrument_core(core) -> None:
    """Charge-commit timings and database errors of this core's engines reach the metrics."""
    from sqlalchemy import event

    core.group_commit.on_batch = _batch_done
    for engine in {id(core.engine): core.engine, id(core.read_engine): core.read_engine}.values():
        if not event.contains(engine, "handle_error", _database_error):
            event.listen(engine, "handle_error", _database_error)


def _batch_done(seconds: float, members: int) -> None:
    CHARGE_COMMIT_SECONDS.observe(seconds)


def _database_error(context) -> None:
    error = context.original_exception
    labelled(DATABASE_ERRORS, error=type(error).__name__).inc()


class ThinkTimer:
    """AGI think time: from a reply read off a call's socket to our next command written. One
    timer per call; `replied()` and `commanded()` are called by the FastAGI connection."""

    __slots__ = ("_since",)

    def __init__(self):
        self._since = None

    def replied(self) -> None:
        self._since = time.perf_counter()

    def commanded(self) -> None:
        if self._since is not None:
            AGI_THINK_SECONDS.observe(time.perf_counter() - self._since)
            self._since = None


# -- read at scrape time ------------------------------------------------------------------------------

class DatabaseCollector:
    """The outbox's backlog and the age of its oldest unsent message, and the Twilio Voice calls in
    progress, read from the database when Prometheus scrapes (two cheap queries per scrape, none
    per request). A Twilio call lives between webhooks only as its state row (billing.call_sessions,
    kept until the status callback ends it or it expires), so no serving process could count it."""

    def __init__(self, core):
        self.core = core

    def describe(self):
        return []  # nothing read at registration: the database may be down when the app starts

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import func, select

        from billing.models import CallSession, OutboxMessage

        backlog = GaugeMetricFamily(OUTBOX_BACKLOG, "Outbox messages not yet sent (due or waiting for a retry)")
        oldest = GaugeMetricFamily(OUTBOX_OLDEST_AGE_SECONDS, "Age of the oldest unsent outbox message, 0 when none")
        twilio = GaugeMetricFamily(TWILIO_LIVE_CALLS, "Twilio Voice calls in progress (their state not yet ended or expired)")
        try:
            with self.core.read_engine.connect() as conn:
                count, first = conn.execute(select(func.count(OutboxMessage.id), func.min(OutboxMessage.created_at))
                                            .where(OutboxMessage.sent_at.is_(None))).one()
                calls = conn.execute(select(func.count(CallSession.call_id))
                                     .where(CallSession.expires_at > self.core.clock.now())).scalar_one()
        except Exception as error:  # the scrape still answers; the error is counted
            labelled(DATABASE_ERRORS, error=type(error).__name__).inc()
            return
        backlog.add_metric([], count)
        age = (self.core.clock.now() - first).total_seconds() if first is not None else 0.0
        oldest.add_metric([], max(0.0, age))
        twilio.add_metric([], calls)
        yield backlog
        yield oldest
        yield twilio


def exposition(core) -> tuple[bytes, str]:
    """The text Prometheus scrapes: every process's values summed in multiprocess mode, this
    process's alone otherwise; then what the database says."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    database = CollectorRegistry()
    database.register(DatabaseCollector(core))
    return body + generate_latest(database), CONTENT_TYPE_LATEST


def register(app, core) -> None:
    """`GET /metrics` on the Flask app."""
    from flask import Response

    @app.get("/metrics")
    def metrics():
        body, content_type = exposition(core)
        return Response(body, status=200, content_type=content_type)
