"""What time triggers: bill runs, prepaid expiry, packs, friend requests and the outbox (JOBS)."""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from billing import services, signin
from billing.expiry import run_expiry_reminders, run_line_expiries
from billing.friend_credit import run_friend_request_lapses
from billing.pack_renewal import run_pack_expiries, run_pack_renewals
from sms.dispatch import dispatch_outbox

log = logging.getLogger("selfcare.worker")

# (name, function taking the core) run once per tick, in order.
JOBS: list = [
    ("bill-runs", lambda core: _in_uow(core, services.run_due_bill_cycles)),
    # before the pack jobs, so a renewal meets the line's status as its dates make it (the dates
    # bar spending anyway: this writes the status, settles closed lines and tells the subscriber)
    ("line-expiries", run_line_expiries),
    ("expiry-reminders", run_expiry_reminders),
    ("pack-renewals", run_pack_renewals),
    ("pack-expiries", run_pack_expiries),
    ("friend-request-lapses", run_friend_request_lapses),
    ("signin-purge", lambda core: _in_uow(core, signin.purge)),  # challenges and sessions ended a day ago
    ("sms-outbox", dispatch_outbox),
    ("audit", lambda core: audit_now_and_then(core)),
]

# The audit reads every ledger entry: every few minutes, not every tick. 0 audits every tick.
AUDIT_INTERVAL_S = float(os.environ.get("SELFCARE_AUDIT_INTERVAL_S", "300"))
# By the core itself, not its id(): a core freed (a test's) could leave its id to the next one.
_last_audit: "weakref.WeakKeyDictionary[object, float]" = weakref.WeakKeyDictionary()


def audit_now_and_then(core) -> int | str:
    """Every AUDIT_INTERVAL_S: the audit, its result published for /metrics (selfcare_audit_*).
    Returns the accounts that differ from their ledger, or "later" between audits."""
    from selfcare import metrics

    started = time.monotonic()
    if started - _last_audit.get(core, float("-inf")) < AUDIT_INTERVAL_S:
        return "later"
    _last_audit[core] = started
    try:
        with core.reader() as uow:
            problems = services.audit(uow)
    except Exception:
        metrics.AUDIT_FAILED.set(1)
        raise
    metrics.AUDIT_MISMATCHES.set(len(problems))
    metrics.AUDIT_FAILED.set(1 if problems else 0)
    metrics.AUDIT_LAST_RUN.set(time.time())
    if problems:
        log.error("audit: %d account(s) differ from their ledger (run `selfcare audit`)", len(problems))
    return len(problems)


def _in_uow(core, fn):
    with core.uow() as uow:
        return fn(uow)


def run_once(core) -> dict:
    done = {}
    for name, job in JOBS:
        try:
            done[name] = job(core)
        except Exception:  # one failing job must not stop the others
            log.exception("worker job %s failed", name)
            done[name] = None
    return done


def run_forever(core, stop: threading.Event, tick_seconds: float = 5.0) -> None:
    while not stop.is_set():
        run_once(core)
        stop.wait(tick_seconds)
