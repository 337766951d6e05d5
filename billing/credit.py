"""Nar Credit and SOS Credit (seed 003): who may borrow, how much, the fees, and the debt.

A credit adds its amount to the beneficiary's balance (the borrower's own, or a friend's) and
its amount plus the service fee to the borrower's debt account (`nar_debt` / `sos_debt`). The
0.08 AZN request fee is taken at once when the borrower's balance (before the credit lands)
covers it, otherwise it joins the debt. The whole debt is recovered at the next top-up, as far
as the balance allows. A credit never touches the line's validity dates. Limits count the
principal of credits not yet fully repaid. Choices: docs/rules.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from . import ledger, lines, outbox, validity
from .errors import BalanceExpired, CreditRefused
from .models import CreditGrant, LedgerEntry, Operation, Subscriber
from .money import ZERO, fmt_exact, from_units, to_units
from .msisdn import mask, normalize
from .offers import NarOption

log = logging.getLogger("billing.credit")

TOPUP_KINDS = ("topup", "card")
DEBT_ACCOUNT = {"nar": "nar_debt", "sos": "sos_debt"}


@dataclass(frozen=True)
class CreditStanding:
    nar_limit: Decimal
    nar_owed_principal: Decimal
    sos_owed_principal: Decimal

    @property
    def nar_available(self) -> Decimal:
        return max(self.nar_limit - self.nar_owed_principal, ZERO)


@dataclass(frozen=True)
class CreditResult:
    kind: str
    amount: Decimal
    fee: Decimal
    request_fee: Decimal
    request_fee_deferred: bool
    debt: Decimal  # the borrower's debt of this kind afterwards
    duplicate: bool = False


@dataclass(frozen=True)
class CreditDebt:
    nar: Decimal
    sos: Decimal


# -- eligibility -------------------------------------------------------------------------------

def _topped_up(uow, line: Subscriber, since: datetime | None = None, until: datetime | None = None):
    query = select(func.coalesce(func.sum(LedgerEntry.delta_units), 0), func.count(LedgerEntry.id)).where(
        LedgerEntry.subscriber_id == line.id, LedgerEntry.account == "balance",
        LedgerEntry.kind.in_(TOPUP_KINDS), LedgerEntry.delta_units > 0)
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    if until is not None:
        query = query.where(LedgerEntry.created_at < until)
    total, count = uow.session.execute(query).one()
    return from_units(total), count


def require_active(uow, line: Subscriber) -> None:
    """Seed 003: credit is for active lines; one whose balance expired is told to top up instead."""
    refusal = validity.spend_refusal(line, uow.clock.now().date())
    if isinstance(refusal, BalanceExpired):
        raise CreditRefused("balance-expired", f"credit needs an active line: {refusal}")
    if refusal is not None:
        raise CreditRefused("not-active", f"credit needs an active line: {refusal}")


def check_borrower(uow, line: Subscriber) -> None:
    """Seed 003's conditions, one refusal reason each."""
    rules = uow.offers.credit
    if line.plan != "prepaid":
        raise CreditRefused("not-prepaid", "credit is for prepaid lines")
    require_active(uow, line)
    today = uow.clock.now().date()
    if (today - line.activated_on).days < rules.min_days_in_network:
        raise CreditRefused("too-new", f"credit needs {rules.min_days_in_network} days in network")
    _, count = _topped_up(uow, line)
    if count < rules.min_topups:
        raise CreditRefused("no-topup", "credit needs at least one top-up")
    # "within 7 days after activation": top-ups dated up to activation day + 7, inclusive.
    week_end = datetime.combine(line.activated_on + timedelta(days=rules.first_week_days + 1), time.min)
    first_week, _ = _topped_up(uow, line, until=week_end)
    if first_week < rules.first_week_min_topup:
        raise CreditRefused("first-week", f"credit needs {rules.first_week_min_topup} AZN topped up "
                                          f"within {rules.first_week_days} days of activation")


def _owed_principal(uow, line: Subscriber, kind: str) -> Decimal:
    total = uow.session.scalar(select(func.coalesce(func.sum(CreditGrant.principal_units), 0)).where(
        CreditGrant.debtor_id == line.id, CreditGrant.kind == kind, CreditGrant.repaid_at.is_(None)))
    return from_units(total)


def standing(uow, line: Subscriber) -> CreditStanding:
    rules = uow.offers.credit
    since = uow.clock.now() - timedelta(days=rules.history_days)
    recent, _ = _topped_up(uow, line, since=since)
    return CreditStanding(rules.nar_limit(recent), _owed_principal(uow, line, "nar"), _owed_principal(uow, line, "sos"))


def _nar_maxed(rules, s: CreditStanding) -> bool:
    """SOS needs Nar's maximum reached: no Nar amount of the table fits under the line's limit."""
    return s.nar_available < rules.nar[0].amount


def nar_option(rules, s: CreditStanding, code: str | None) -> NarOption:
    """The option asked for by its code, or for `*700#` the largest that fits, at most ussd_max."""
    if code is None:
        cap = min(rules.ussd_max, s.nar_available)
        fitting = [o for o in rules.nar if o.amount <= cap]
        if not fitting:
            raise CreditRefused("limit", f"no Nar Credit available (limit {s.nar_limit} AZN reached)")
        return fitting[-1]
    option = rules.nar_by_code(code)
    if option is None:
        raise CreditRefused("unknown-amount", f"no Nar Credit with code {code}")
    if option.amount > s.nar_available:
        fitting = [o for o in rules.nar if o.amount <= s.nar_available]
        if not fitting:
            raise CreditRefused("limit", f"no Nar Credit available (limit {s.nar_limit} AZN reached)")
        # Not the limit: a smaller amount still fits, and the answer says which.
        raise CreditRefused("above-available", f"{option.amount} AZN is above the {s.nar_available} AZN available",
                            asked=option.amount, available=s.nar_available, fitting_amount=fitting[-1].amount,
                            fitting_code=fitting[-1].code)
    return option


# -- granting ----------------------------------------------------------------------------------

def _grant(uow, borrower: Subscriber, beneficiary: Subscriber, kind: str, amount: Decimal, fee: Decimal,
           op) -> CreditResult:
    rules = uow.offers.credit
    deferred = borrower.balance_units < to_units(rules.request_fee)  # checked before the credit lands
    account = DEBT_ACCOUNT[kind]
    owed = amount + fee + (rules.request_fee if deferred else ZERO)
    ledger.post(uow, beneficiary, "balance", amount, op, f"credit:{kind}")
    ledger.post(uow, borrower, account, amount + fee, op, f"credit:{kind}")
    if deferred:
        ledger.post(uow, borrower, account, rules.request_fee, op, "credit:request-fee-deferred")
    else:
        ledger.post(uow, borrower, "balance", -rules.request_fee, op, "credit:request-fee")
    uow.session.add(CreditGrant(
        operation_id=op.id, debtor_id=borrower.id, beneficiary_id=beneficiary.id, kind=kind,
        principal_units=to_units(amount), fee_units=to_units(fee),
        deferred_request_fee_units=to_units(rules.request_fee) if deferred else 0,
        outstanding_units=to_units(owed), granted_at=uow.clock.now()))
    debt = ledger.account_value(borrower, account)
    params = {"kind": kind, "amount": fmt_exact(amount), "fee": fmt_exact(fee),
              "request_fee": fmt_exact(rules.request_fee), "request_fee_deferred": deferred, "debt": fmt_exact(debt)}
    if beneficiary.id == borrower.id:
        outbox.enqueue(uow, borrower, "credit-granted", params, key=f"{op.key}:credit-granted")
    else:
        outbox.enqueue(uow, borrower, "credit-for-friend-sent", {**params, "friend": beneficiary.msisdn},
                       key=f"{op.key}:credit-for-friend-sent")
        outbox.enqueue(uow, beneficiary, "credit-from-friend", {"amount": fmt_exact(amount), "friend": borrower.msisdn},
                       key=f"{op.key}:credit-from-friend")
    outbox.notify_balance_change(uow, beneficiary, op, f"credit:{kind}")
    log.info("%s credit %s AZN (fee %s) for %s to %s; request fee %s", kind, amount, fee, mask(borrower.msisdn),
             mask(beneficiary.msisdn), "deferred" if deferred else "paid")
    return CreditResult(kind, amount, fee, rules.request_fee, deferred, debt)


def _duplicate(uow, key: str, kind: str) -> CreditResult:
    grant = uow.session.scalar(select(CreditGrant).join(Operation, Operation.id == CreditGrant.operation_id)
                               .where(Operation.key == key))
    if grant is None:
        return CreditResult(kind, ZERO, ZERO, ZERO, False, ZERO, duplicate=True)
    return CreditResult(grant.kind, from_units(grant.principal_units), from_units(grant.fee_units),
                        uow.offers.credit.request_fee, grant.deferred_request_fee_units > 0,
                        from_units(grant.outstanding_units), duplicate=True)


def _lock_pair(uow, borrower_msisdn: str, beneficiary_msisdn: str | None):
    """Both lines locked in one order (by number), so two friends crediting each other cannot deadlock."""
    wanted = [normalize(borrower_msisdn)] + ([normalize(beneficiary_msisdn)] if beneficiary_msisdn else [])
    locked = {n: lines.find(uow, n, lock=True) for n in sorted(set(wanted))}
    return locked[wanted[0]], locked[wanted[-1]]


def check_beneficiary(uow, borrower: Subscriber, beneficiary: Subscriber) -> None:
    if beneficiary.id == borrower.id:
        raise CreditRefused("self", "a credit for a friend goes to another number")
    if beneficiary.plan != "prepaid":
        raise CreditRefused("friend-not-prepaid", "the friend's line is not prepaid")
    if not validity.may_spend(beneficiary, uow.clock.now().date()):  # suspended, balance expired, closed
        raise CreditRefused("friend-not-active", "the friend's line is not active")


def take_nar_credit(uow, msisdn: str, key: str, code: str | None = None, *, for_friend: str | None = None
                    ) -> CreditResult:
    """`*700#` (code None: the largest available up to 3 AZN), `*700#NN#`, or `*700*01*<friend>#`."""
    if ledger.find_operation(uow, key) is not None:
        return _duplicate(uow, key, "nar")
    result = grant_nar(uow, msisdn, key, code, for_friend=for_friend)
    uow.commit()
    return result


def grant_nar(uow, msisdn: str, key: str, code: str | None = None, *, for_friend: str | None = None
                          ) -> CreditResult:
    """The Nar grant, left for the caller to commit (a friend's confirmation commits it with its request)."""
    borrower, beneficiary = _lock_pair(uow, msisdn, for_friend)
    if for_friend:
        check_beneficiary(uow, borrower, beneficiary)
    check_borrower(uow, borrower)
    option = nar_option(uow.offers.credit, standing(uow, borrower), code)
    op = ledger.open_operation(uow, key, "credit:nar", borrower)
    if op is None:
        return _duplicate(uow, key, "nar")
    return _grant(uow, borrower, beneficiary, "nar", option.amount, option.fee, op)


def take_sos_credit(uow, msisdn: str, key: str) -> CreditResult:
    """`*711#`: 1 AZN, only once the Nar limit is reached, at most 2 AZN owed at once."""
    rules = uow.offers.credit
    if ledger.find_operation(uow, key) is not None:
        return _duplicate(uow, key, "sos")
    borrower = lines.find(uow, msisdn, lock=True)
    check_borrower(uow, borrower)
    s = standing(uow, borrower)
    if not _nar_maxed(rules, s):
        fitting = [o for o in rules.nar if o.amount <= min(rules.ussd_max, s.nar_available)]
        raise CreditRefused("nar-not-maxed", f"SOS Credit is for lines that reached their Nar limit "
                                             f"({s.nar_available} AZN of Nar Credit still available)",
                            fitting_amount=fitting[-1].amount)
    if s.sos_owed_principal + rules.sos_amount > rules.sos_max_outstanding:
        raise CreditRefused("sos-limit", f"at most {rules.sos_max_outstanding} AZN of SOS Credit at once")
    op = ledger.open_operation(uow, key, "credit:sos", borrower)
    if op is None:
        return _duplicate(uow, key, "sos")
    result = _grant(uow, borrower, borrower, "sos", rules.sos_amount, rules.sos_fee, op)
    uow.commit()
    return result


def credit_debt(uow, msisdn: str) -> CreditDebt:
    """`*700#150#` and `*711#150#`: free; nothing is charged or written."""
    line = lines.find(uow, msisdn)
    return CreditDebt(ledger.account_value(line, "nar_debt"), ledger.account_value(line, "sos_debt"))


def available_nar_credit(uow, msisdn: str) -> Decimal:
    """What `*700#` would give now (0 when refused)."""
    line = lines.find(uow, msisdn)
    check_borrower(uow, line)
    return nar_option(uow.offers.credit, standing(uow, line), None).amount


# -- recovery at top-up ------------------------------------------------------------------------

def _repay_from_balance(uow, line: Subscriber, op, kind: str) -> int:
    """Oldest credit first, as far as the balance allows; returns the units taken."""
    owed = line.nar_debt_units + line.sos_debt_units
    left = min(owed, max(line.balance_units, 0))
    if left <= 0:
        return 0
    taken = left
    repaid = {"nar": 0, "sos": 0}
    for grant in _open_grants(uow, line):
        part = min(grant.outstanding_units, left)
        grant.outstanding_units -= part
        repaid[grant.kind] += part
        left -= part
        if grant.outstanding_units == 0:
            grant.repaid_at = uow.clock.now()
        if left == 0:
            break
    for kind_of_credit, units in repaid.items():
        ledger.post(uow, line, DEBT_ACCOUNT[kind_of_credit], -from_units(units), op, kind)
    ledger.post(uow, line, "balance", -from_units(taken), op, kind)
    return taken


def _open_grants(uow, line: Subscriber):
    return uow.session.scalars(select(CreditGrant).where(
        CreditGrant.debtor_id == line.id, CreditGrant.repaid_at.is_(None))
        .order_by(CreditGrant.granted_at, CreditGrant.id).with_for_update())


def recover_credit_debt(uow, line: Subscriber, op) -> None:
    """After a top-up: the whole debt, oldest credit first, as far as the balance allows (seed 003)."""
    if line.plan != "prepaid":
        return
    taken = _repay_from_balance(uow, line, op, "credit:repay")
    if not taken:
        return
    if not line.notify_balance:  # else the top-up's own balance-change SMS names the repayment
        outbox.enqueue(uow, line, "credit-repaid", {
            "repaid": fmt_exact(from_units(taken)),
            "debt": fmt_exact(from_units(line.nar_debt_units + line.sos_debt_units))}, key=f"{op.key}:credit-repaid")
    log.info("credit debt %s AZN recovered from %s's top-up", from_units(taken), mask(line.msisdn))


def settle_at_closure(uow, line: Subscriber, op) -> tuple[Decimal, Decimal]:
    """A closing line (its subscription ended): what is left of the balance repays the credit debt
    first, as a top-up would; the debt it does not cover is written off, each by a ledger entry of
    its own kind. Returns (repaid, written off)."""
    repaid = _repay_from_balance(uow, line, op, "credit:repay")
    written_off = {"nar": 0, "sos": 0}
    for grant in _open_grants(uow, line):
        written_off[grant.kind] += grant.outstanding_units
        grant.outstanding_units = 0
        grant.repaid_at = uow.clock.now()  # nothing is owed on it any more
    for kind, units in written_off.items():
        ledger.post(uow, line, DEBT_ACCOUNT[kind], -from_units(units), op, "credit:write-off")
    total = sum(written_off.values())
    if repaid or total:
        log.info("closing %s: credit debt %s AZN repaid from the balance, %s AZN written off", mask(line.msisdn),
                 from_units(repaid), from_units(total))
    return from_units(repaid), from_units(total)
