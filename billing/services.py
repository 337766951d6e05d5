"""The service layer: what every channel (IVR, SMS, USSD, the CLI, the web) calls.

Each service takes a unit of work and commits it; inside `uow.atomic()` several compose into one
transaction. The compositions a channel needs live here, written out, so that a fee and the action
it pays for, or a top-up and what it triggers, are one transaction by construction. Domain errors
are in `billing.errors`; each channel turns them into its own answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Generic, TypeVar

from . import memo, sharing
from .msisdn import normalize
from .audit import audit, count_lines
from .billrun import run_due_bill_cycles
from .charging import Charge, call_price, charge_call, charge_sms
from .credit import CreditDebt, CreditResult, available_nar_credit, credit_debt, take_nar_credit, take_sos_credit
from .errors import InvalidMsisdn, UnknownCard, WrongPlan
from .history import HistoryEntry, HistoryPage, history
from .friend_credit import (FriendAnswer, answer_friend_request, answer_oldest_friend_request,
                            ask_friend_for_credit, credit_for_friend, pending_requests)
from .lines import add_subscriber, set_balance_notifications, set_language, set_roaming, set_status
from .pack_renewal import suspend_at_will
from .packs import PackOrder, PackState, deactivate_packs, order_pack, pack_status, stop_pack_renewal
from .cards import CardStatus, CardTopUp, add_card, card_status, redeem_card
from .payments import TopUp, topup
from .plan_change import change_plan
from .reports import BalanceReport, balance_report
from .sharing import grant_access, grantees, revoke_access, revoke_all, shared_report
from .usage import DataUsage, record_data_usage

T = TypeVar("T")

# Seed 000: 2112 is the prepaid line's balance number, 650 the postpaid one's. Every channel asks
# here which plan a balance number serves.
BALANCE_NUMBERS = {"2112": "prepaid", "650": "postpaid"}


def plan_served_by(number: str) -> str:
    return BALANCE_NUMBERS[number]


def balance_number_for(plan: str) -> str:
    return next(number for number, served in BALANCE_NUMBERS.items() if served == plan)


def require_served(report: BalanceReport, number: str) -> BalanceReport:
    """The report when the line's plan is the one `number` serves; WrongPlan (naming the line's own
    plan) when it is the other."""
    if report.plan != plan_served_by(number):
        raise WrongPlan(f"{number} serves {plan_served_by(number)} lines, this one is {report.plan}",
                        report.plan)
    return report


# -- a fee and what it pays for, in one transaction --------------------------------------------

@dataclass(frozen=True)
class Paid(Generic[T]):
    result: T
    fee: Decimal  # taken now: 0 for a retry whose fee was taken before
    report: BalanceReport | None = None  # the payer's figures right after the fee


def _for_fee(uow, msisdn: str, number: str, key: str, action: Callable[[], T]) -> Paid[T]:
    with uow.atomic():
        charge = charge_sms(uow, msisdn, number, key)
        result = action()
    return Paid(result, Decimal(0) if charge.duplicate else charge.fee, charge.report)


def report_for_fee(uow, msisdn: str, number: str, key: str) -> Paid[BalanceReport]:
    """The line's figures after the fee for asking (a blank SMS to 2112, 650 or 1005)."""
    with uow.atomic():
        charge = charge_sms(uow, msisdn, number, key)
        report = charge.report or balance_report(uow, msisdn)  # a retry's fee came with no figures
    return Paid(report, Decimal(0) if charge.duplicate else charge.fee, report)


def grant_for_fee(uow, owner: str, grantee: str, number: str, key: str) -> Paid[bool]:
    """`+<number>` to 650: True when the grant is new."""
    return _for_fee(uow, owner, number, key, lambda: sharing.grant_access(uow, owner, grantee))


def revoke_for_fee(uow, owner: str, grantee: str, number: str, key: str) -> Paid[bool]:
    """`-<number>` to 650: True when there was a grant to revoke."""
    return _for_fee(uow, owner, number, key, lambda: sharing.revoke_access(uow, owner, grantee))


def revoke_all_for_fee(uow, owner: str, number: str, key: str) -> Paid[int]:
    """`-` to 650: how many grants were revoked."""
    return _for_fee(uow, owner, number, key, lambda: sharing.revoke_all(uow, owner))


def card_check_for_fee(uow, msisdn: str, serial: str, number: str, key: str) -> Paid[CardStatus | None]:
    """A serial sent to 1003: the card's status (None when no card has it; the lookup is charged
    either way)."""
    def look_up():
        try:
            return card_status(uow, serial)
        except UnknownCard:
            return None
    return _for_fee(uow, msisdn, number, key, look_up)


# -- a retried request answered from memory ----------------------------------------------------

def answer_once(core, key: str, compute: Callable[[object], dict], line: str | None = None) -> tuple[dict, bool]:
    """(answer, from memory). A request seen before gets its first answer back and changes nothing;
    otherwise `compute(uow)` runs and its answer is kept in the same transaction as its work.
    `line` is the number of the line `compute` charges (any accepted form): batches lock lines in
    the order of their numbers (billing.group_commit), so batches of two processes cannot deadlock.

    Recall, work and answer are one writer transaction, run through the process's group commit: the
    request shares its transaction and its commit with the requests that arrive with it, and gets its
    answer only once that commit is done. So a retry answered from memory takes a writer's place (on
    SQLite, the write lock) just to read one row. That is acceptable: retries are rare (a gateway that
    timed out), the place costs a savepoint in a batch that commits anyway, not a commit of its own,
    and twins that meet in one batch are answered once (the second reads what the first kept).

    `compute` may catch a domain error to answer it: wrap the failing step in `uow.atomic()` so its
    partial work is undone while the refusal is still remembered.
    """
    def once(uow) -> tuple[dict, bool]:
        earlier = memo.recall(uow, key, line)
        if earlier is not None:
            return earlier, True
        answer = compute(uow)
        memo.remember(uow, key, answer)
        return answer, False

    return core.group_commit.submit(once, _lock_key(line), key)


def _lock_key(line: str | None) -> str | None:
    """The E.164 number the line's row is locked by; None for a number no line could have."""
    if line is None:
        return None
    try:
        return normalize(line)
    except InvalidMsisdn:
        return None


__all__ = [
    "BALANCE_NUMBERS", "BalanceReport", "CardStatus", "CardTopUp", "Charge", "CreditDebt", "CreditResult", "DataUsage",
    "FriendAnswer", "HistoryEntry", "HistoryPage", "PackOrder", "PackState", "Paid", "TopUp",
    "add_card", "add_subscriber", "answer_friend_request", "answer_oldest_friend_request", "answer_once",
    "ask_friend_for_credit", "audit", "available_nar_credit", "balance_number_for", "balance_report",
    "call_price", "card_check_for_fee", "card_status", "change_plan", "charge_call", "charge_sms",
    "count_lines", "credit_debt", "credit_for_friend", "deactivate_packs", "grant_for_fee",
    "grant_access", "grantees", "history", "order_pack", "pack_status", "pending_requests", "plan_served_by",
    "record_data_usage", "redeem_card", "report_for_fee", "require_served", "revoke_access", "revoke_all",
    "revoke_all_for_fee", "revoke_for_fee", "run_due_bill_cycles", "set_balance_notifications", "set_language", "set_roaming",
    "set_status", "shared_report", "stop_pack_renewal", "suspend_at_will", "take_nar_credit",
    "take_sos_credit", "topup",
]
