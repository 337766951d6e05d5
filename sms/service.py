"""parse -> billing -> render: the one code path behind Twilio, Kannel and `selfcare sms`.

Idempotent on the request's key (Twilio MessageSid, Kannel message id, a fresh uuid on the CLI):
a retry gets the answer kept the first time, flash flag included, and is charged nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

import texts
from billing import services
from billing.errors import (AccessDenied, BalanceExpired, CreditRefused, FriendRequestExpired, InsufficientBalance,
                            InvalidMsisdn, LineNotActive, NoFriendRequest, UnknownSubscriber, WrongPlan)
from billing.msisdn import mask, normalize
from texts.encoding import is_gsm7

from .commands import Command, Kind, parse

log = logging.getLogger("sms.service")

FEE_HINTS = ("2112", "1005", "1003")  # usage hints that quote the number's fee
# Replies that carry balance figures go as flash SMS where the gateway can (seed 000: balance
# messages are not auto-saved on the handset).
BALANCE_TEMPLATES = ("prepaid-balance", "prepaid-balance-expired", "postpaid-balance", "shared-postpaid",
                     "shared-prepaid", "shared-prepaid-expired")
# A refused credit, in the few words an SMS has room for (USSD says more, with what still fits).
WHY_REFUSED = {
    "limit": "why-limit", "above-available": "why-limit", "not-active": "why-not-active",
    "balance-expired": "why-not-active", "not-prepaid": "why-not-prepaid", "too-new": "why-history",
    "no-topup": "why-history", "first-week": "why-history", "friend-not-prepaid": "why-friend-line",
    "friend-not-active": "why-friend-line", "self": "why-friend-line",
}


@dataclass(frozen=True)
class Reply:
    text: str
    command: Command
    flash: bool = False
    charged: Decimal = Decimal(0)  # taken by this request (nothing for a retry)
    duplicate: bool = False  # answered from memory: a retry of a request already handled
    outcome: str = ""  # the reply's template name (`prepaid-balance`, `insufficient-balance`, ...)

    @property
    def ucs2(self) -> bool:
        return not is_gsm7(self.text)


@dataclass
class Outcome:
    template: str
    values: dict = field(default_factory=dict)
    charged: Decimal = Decimal(0)


class SmsService:
    def __init__(self, core):
        self.core = core
        self.texts = texts.current()["sms"]

    def handle(self, sender: str, to: str, text: str | None, key: str) -> Reply:
        command = parse(to, text)

        def compute(uow) -> dict:
            try:
                report = services.balance_report(uow, sender, lock=True)  # the line this request may charge
            except (UnknownSubscriber, InvalidMsisdn):
                log.info("sms to %s from unknown sender %s: not charged", command.short_number, mask(sender))
                outcome, language = Outcome("unknown-sender"), texts.DEFAULT_LANGUAGE
            else:
                language = report.language
                if report.closed:  # the number is no longer served: one free answer to everything
                    log.info("sms to %s from closed line %s: not charged", command.short_number, mask(sender))
                    outcome = Outcome("line-closed", {"ends": report.subscription_ends})
                else:
                    outcome = self._answer(uow, command, report, key)
            return {"text": self.texts.render(outcome.template, language, **outcome.values),
                    "flash": outcome.template in BALANCE_TEMPLATES, "charged": str(outcome.charged),
                    "outcome": outcome.template}

        answer, duplicate = services.answer_once(self.core, key, compute, line=sender)
        if duplicate:
            log.info("sms %s from %s: retry of %s, answered from memory", command.kind.value, mask(sender), key)
        charged = Decimal(0) if duplicate else Decimal(answer.get("charged", "0"))
        return Reply(answer["text"], command, bool(answer.get("flash")), charged, duplicate,
                     answer.get("outcome", ""))

    def unavailable(self, command: Command) -> Reply:
        return Reply(self.texts.render("unavailable", texts.DEFAULT_LANGUAGE), command, outcome="unavailable")

    # -- one handler per command -------------------------------------------------------------

    def _answer(self, uow, command: Command, report, key: str) -> Outcome:
        handler = {
            Kind.PREPAID_BALANCE: self._own_balance,
            Kind.POSTPAID_BALANCE: self._own_balance,
            Kind.GRANT: self._change_one_grant,
            Kind.REVOKE: self._change_one_grant,
            Kind.REVOKE_ALL: self._revoke_all,
            Kind.SHARED_BALANCE: self._shared_balance,
            Kind.LINE_INFO: self._line_info,
            Kind.CARD_CHECK: self._card_check,
            Kind.FRIEND_CREDIT_REPLY: self._friend_credit_reply,
            Kind.USAGE: self._usage,
            Kind.NOT_SERVED: self._not_served,
        }[command.kind]
        try:
            with uow.atomic():  # a refusal undoes what the handler began; the refusal is still kept
                return handler(uow, command, report, key)
        except InsufficientBalance:
            fee = self._fee(command.short_number)
            log.info("sms %s from %s refused: balance below the %s AZN fee, not charged",
                     command.kind.value, mask(report.msisdn), fee)
            return Outcome("insufficient-balance", {"fee": fee})
        except LineNotActive as barred:  # the balance may not pay (expired, suspended): answered free
            log.info("sms %s from %s: %s, not charged", command.kind.value, mask(report.msisdn), barred.code)
            if isinstance(barred, BalanceExpired):
                return Outcome("balance-expired", {"expires": report.balance_expires})
            return Outcome("line-suspended")

    def _own_balance(self, uow, command, report, key) -> Outcome:
        """A blank SMS to 2112 or 650: the line's figures, if the number serves its plan."""
        try:
            services.require_served(report, command.short_number)
        except WrongPlan as wrong:
            right = services.balance_number_for(wrong.plan)
            log.info("%s from %s line %s: told to use %s, not charged", command.short_number, wrong.plan,
                     mask(report.msisdn), right)
            return Outcome(f"use-{right}")
        try:
            paid = services.report_for_fee(uow, report.msisdn, command.short_number, key)
        except LineNotActive as barred:  # reads stay free: the figures, with nothing taken
            log.info("%s from %s: %s, figures told free", command.short_number, mask(report.msisdn), barred.code)
            return self._figures(report, Decimal(0))
        return self._figures(paid.report, paid.fee)

    def _figures(self, report, fee: Decimal) -> Outcome:
        if report.plan == "postpaid":
            return Outcome("postpaid-balance", self._postpaid_figures(report), fee)
        template = "prepaid-balance-expired" if report.balance_expired else "prepaid-balance"
        return Outcome(template, self._prepaid_figures(report), fee)

    def _other_number(self, command: Command) -> str | None:
        try:
            return normalize(command.argument)
        except InvalidMsisdn:
            return None

    def _grant_refusal(self, command, report) -> Outcome | None:
        """What makes a grant/revoke impossible, answered free before anything is charged."""
        if report.plan != services.plan_served_by("650"):
            log.info("650 %s from prepaid %s: refused, not charged", command.kind.value, mask(report.msisdn))
            return Outcome("grant-needs-postpaid")
        if command.kind is Kind.REVOKE_ALL:
            return None
        other = self._other_number(command)
        if other is None:
            log.info("650 %s from %s: invalid number, not charged", command.kind.value, mask(report.msisdn))
            return Outcome("invalid-number")
        if other == report.msisdn:
            return Outcome("grant-self")
        return None

    # what `+<number>` and `-<number>` do: (billing service, answer when it changed something, when not)
    _ONE_GRANT = {
        Kind.GRANT: (services.grant_for_fee, "grant-made", "grant-exists"),
        Kind.REVOKE: (services.revoke_for_fee, "revoke-done", "revoke-none"),
    }

    def _change_one_grant(self, uow, command, report, key) -> Outcome:
        refusal = self._grant_refusal(command, report)
        if refusal:
            return refusal
        other = self._other_number(command)
        change, done, unchanged = self._ONE_GRANT[command.kind]
        paid = change(uow, report.msisdn, other, command.short_number, key)
        log.info("650 %s by %s for %s: %s", command.kind.value, mask(report.msisdn), mask(other),
                 "done" if paid.result else "nothing to change")
        return Outcome(done if paid.result else unchanged, {"number": other}, paid.fee)

    def _revoke_all(self, uow, command, report, key) -> Outcome:
        refusal = self._grant_refusal(command, report)
        if refusal:
            return refusal
        paid = services.revoke_all_for_fee(uow, report.msisdn, command.short_number, key)
        if not paid.result:
            return Outcome("revoke-all-none", charged=paid.fee)
        return Outcome("revoke-all-done", {"count": paid.result}, paid.fee)

    def _shared_balance(self, uow, command, report, key) -> Outcome:
        if self._other_number(command) == report.msisdn:
            return self._own_balance(uow, command, report, key)
        try:
            owner = services.shared_report(uow, report.msisdn, command.argument)
        except AccessDenied:
            log.info("650 shared balance for %s refused, not charged", mask(report.msisdn))
            return Outcome("shared-refused")
        if owner.closed:  # a closed number's figures are no one's business any more
            log.info("650 shared balance of a closed line for %s refused, not charged", mask(report.msisdn))
            return Outcome("shared-refused")
        charge = services.charge_sms(uow, report.msisdn, command.short_number, key)
        charged = Decimal(0) if charge.duplicate else charge.fee
        values = {"number": owner.msisdn}
        if owner.plan == "postpaid":
            return Outcome("shared-postpaid", {**values, **self._postpaid_figures(owner)}, charged)
        figures = self._prepaid_figures(owner)
        template = "shared-prepaid-expired" if owner.balance_expired else "shared-prepaid"
        return Outcome(template, {**values, "balance": figures["balance"], "expires": figures["expires"]}, charged)

    def _line_info(self, uow, command, report, key) -> Outcome:
        paid = services.report_for_fee(uow, report.msisdn, command.short_number, key)
        title = paid.report.tariff.title.get(report.language) or paid.report.tariff.name
        roaming = "roaming-on" if paid.report.roaming else "roaming-off"
        return Outcome("line-info", {"tariff": title, "roaming": roaming}, paid.fee)

    def _card_check(self, uow, command, report, key) -> Outcome:
        paid = services.card_check_for_fee(uow, report.msisdn, command.argument, command.short_number, key)
        card = paid.result
        if card is None:
            return Outcome("card-unknown", {"serial": command.argument}, paid.fee)
        if not card.used:
            return Outcome("card-unused", {"serial": card.serial}, paid.fee)
        return Outcome("card-used", {"serial": card.serial, "when": card.used_at}, paid.fee)

    def _friend_credit_reply(self, uow, command, report, key) -> Outcome:
        """The friend's YES/NO to a credit request (seed 003: confirmed within 30 minutes). Free: the
        credit itself carries the service's fees."""
        try:
            with uow.atomic():
                answer = services.answer_oldest_friend_request(uow, report.msisdn, command.argument == "yes", key)
        except CreditRefused as refused:
            log.info("700 from %s: credit refused (%s)", mask(report.msisdn), refused.reason)
            return Outcome("friend-credit-refused", {"why": WHY_REFUSED.get(refused.reason, "why-history")})
        except NoFriendRequest:
            return Outcome("friend-credit-none")
        except FriendRequestExpired:
            return Outcome("friend-credit-expired")
        asker = {"number": answer.requester}
        if answer.credit is None:
            return Outcome("friend-credit-declined", asker)
        return Outcome("friend-credit-sent", {**asker, "balance": answer.credit.amount})

    def _usage(self, uow, command, report, key) -> Outcome:
        log.info("sms to %s from %s not understood: usage hint, not charged", command.short_number, mask(report.msisdn))
        values = {"fee": self._fee(command.short_number)} if command.short_number in FEE_HINTS else {}
        return Outcome(f"usage-{command.short_number}", values)

    def _not_served(self, uow, command, report, key) -> Outcome:
        log.info("sms to unserved number %s from %s: not charged", command.short_number, mask(report.msisdn))
        return Outcome("not-served")

    # -- figures --------------------------------------------------------------------------------

    def _fee(self, short_number: str) -> Decimal:
        return self.core.tariffs.info_sms_fee(short_number)

    @staticmethod
    def _prepaid_figures(report) -> dict:
        return {"balance": report.shown.balance, "expires": report.balance_expires, "ends": report.subscription_ends}

    @staticmethod
    def _postpaid_figures(report) -> dict:
        shown = report.shown
        return {"billed": shown.billed, "current": shown.current, "advance": shown.advance}


_services: dict[int, SmsService] = {}


def sms_service(core) -> SmsService:
    """The SMS service of a core (one per process and core)."""
    service = _services.get(id(core))
    if service is None or service.core is not core:
        service = _services[id(core)] = SmsService(core)
    return service


def handle_sms(core, sender: str, to: str, text: str | None, key: str) -> Reply:
    return sms_service(core).handle(sender, to, text, key)
