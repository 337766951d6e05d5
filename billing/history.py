"""A line's history: its ledger entries, newest first, paged, each named by what it was.

The entry kinds are the ledger's own (`ledger.post(..., kind)`); `WHAT` maps them onto the few
words a subscriber needs (an SMS fee, a call, a pack, a top-up, a card, credit ...), with the
detail the kind carries (the short number, the call's destination kind, the pack's code).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from . import lines
from .errors import InvalidInput
from .models import LedgerEntry
from .money import from_units

# (kind prefix, what) in the order they are tried: the first prefix that matches names the entry.
WHAT = (
    ("sms:", "sms-fee"),
    ("call:", "call"),
    ("data", "data"),
    ("pack:", "pack"),
    ("topup", "top-up"),
    ("card", "card"),
    ("credit:repay", "credit-repaid"),
    ("credit:request-fee", "credit-fee"),
    ("credit:write-off", "credit-written-off"),
    ("credit:", "credit"),
    ("billrun", "bill"),
    ("opening", "opening"),
    ("plan-change", "plan-change"),
    ("closure", "closure"),
)
MAX_PER_PAGE = 100


def what_of(kind: str) -> tuple[str, str | None]:
    """('pack', '3GB') for 'pack:3GB'; ('other', kind) for a kind this list does not know yet."""
    for prefix, what in WHAT:
        if kind.startswith(prefix):
            detail = kind[len(prefix):] if prefix.endswith(":") else None
            return what, detail or None
    return "other", kind


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    at: datetime
    account: str
    amount: Decimal
    what: str
    detail: str | None


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    page: int
    per_page: int
    total: int


def history(uow, msisdn: str, page: int = 1, per_page: int = 20) -> HistoryPage:
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInput(f"page from 1, per_page from 1 to {MAX_PER_PAGE}")
    line = lines.snapshot(uow, msisdn)
    mine = LedgerEntry.subscriber_id == line.id
    total = uow.session.scalar(select(func.count(LedgerEntry.id)).where(mine))
    rows = uow.session.execute(
        select(LedgerEntry.id, LedgerEntry.created_at, LedgerEntry.account, LedgerEntry.delta_units, LedgerEntry.kind)
        .where(mine).order_by(LedgerEntry.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
    entries = [HistoryEntry(r.id, r.created_at, r.account, from_units(r.delta_units), *what_of(r.kind)) for r in rows]
    return HistoryPage(entries, page, per_page, total)
