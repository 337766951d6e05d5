"""A line's ledger as a subscriber reads it: newest first, a page at a time, each entry named by
what it was (an SMS fee, a call, a pack, data, a top-up, a card, a credit, a bill run, ...)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from . import lines
from .models import LedgerEntry
from .money import from_units

PAGE_SIZE = 10
# The first part of an entry's kind ("sms:2112", "pack:1gb", "credit:request-fee") says what it was.
WHAT = ("sms", "call", "pack", "data", "topup", "card", "credit", "billrun", "plan-change", "opening", "closure")


@dataclass(frozen=True)
class HistoryEntry:
    when: datetime
    account: str  # balance, billed, current, advance, nar_debt, sos_debt
    amount: Decimal  # exact, with its sign: what the entry added to the account
    what: str  # one of WHAT, "other" for a kind this list does not know yet


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    page: int  # 1-based
    has_more: bool


def what_of(kind: str) -> str:
    head = kind.split(":", 1)[0]
    return head if head in WHAT else "other"


def history(uow, msisdn: str, page: int = 1, page_size: int = PAGE_SIZE) -> HistoryPage:
    """One page of the line's own entries; a page past the end is empty, never an error."""
    line = lines.find(uow, msisdn)
    page = max(page, 1)
    rows = uow.session.execute(
        select(LedgerEntry.created_at, LedgerEntry.account, LedgerEntry.delta_units, LedgerEntry.kind)
        .where(LedgerEntry.subscriber_id == line.id)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .offset((page - 1) * page_size).limit(page_size + 1)
    ).all()
    entries = [HistoryEntry(when, account, from_units(units), what_of(kind)) for when, account, units, kind in rows]
    return HistoryPage(entries[:page_size], page, len(entries) > page_size)
