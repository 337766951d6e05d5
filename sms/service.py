"""parse -> billing -> render: the one code path behind Twilio, Kannel and `selfcare sms`.

Idempotent on the request's key (Twilio MessageSid, Kannel message id, a fresh uuid on the CLI):
a retry gets the reply remembered the first time and is charged nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from billing import services
from billing.credit import CreditRefused
from billing.errors import AccessDenied, InsufficientBalance, InvalidMsisdn, UnknownCard, UnknownSubscriber
from billing.friend_credit import FriendRequestExpired, NoFriendRequest
from billing.money import fmt_azn
from billing.msisdn import mask, normalize

from .commands import Command, Kind, parse
from .encoding import is_gsm7
from .replies import (
    DEFAULT_LANGUAGE,
    Catalogue,
    check_tariff_titles,
    fmt_date,
    fmt_fee,
    fmt_number,
    fmt_when,
    load_catalogue,
)

log = logging.getLogger("sms.service")

# Replies that carry balance figures go as flash SMS where the gateway can (seed 000: balance
# messages are not auto-saved on the handset).
FEE_HINTS = ("2112", "1005", "1003")  # usage hints that quote the number's fee
FLASH_KINDS = (Kind.PREPAID_BALANCE, Kind.POSTPAID_BALANCE, Kind.SHARED_BALANCE)
BALANCE_TEMPLATES = ("prepaid_balance", "postpaid_balance", "shared_postpaid", "shared_prepaid")


@dataclass(frozen=True)
class Reply:
    text: str
    command: Command
    language: str = DEFAULT_LANGUAGE
    flash: bool = False
    charged: Decimal = Decimal(0)
    duplicate: bool = False  # answered from memory: a retry of a request already handled

    @property
    def ucs2(self) -> bool:
        return not is_gsm7(self.text)


@dataclass
class Outcome:
    template: str
    values: dict = field(default_factory=dict)
    charged: Decimal = Decimal(0)


class SmsService:
    def __init__(self, core, catalogue: Catalogue | None = None):
        self.core = core
        self.catalogue = catalogue or load_catalogue()
        check_tariff_titles(core.tariffs)

    def handle(self, sender: str, to: str, text: str | None, key: str) -> Reply:
        command = parse(to, text)
        # A read that takes no write lock: the figures here only pick the language and the plan;
        # the charge locks and reads the line afresh.
        with self.core.reader() as uow:
            remembered = services.recall_reply(uow, key)
            if remembered is not None:
                log.info("sms %s from %s: retry of %s, answered from memory", command.kind.value, mask(sender), key)
                return Reply(remembered, command, flash=command.kind in FLASH_KINDS, duplicate=True)
            try:
                report = services.balance_report(uow, sender)
            except (UnknownSubscriber, InvalidMsisdn):
                report = None
        with self.core.uow() as uow:
            if report is None:
                log.info("sms to %s from unknown sender %s: not charged", command.short_number, mask(sender))
                outcome, language = Outcome("unknown_sender"), DEFAULT_LANGUAGE
            else:
                language = report.language
                outcome = self._answer(uow, command, report, key)
            reply_text = self._render(outcome, language)
            services.remember_reply(uow, key, reply_text)
        flash = outcome.template in BALANCE_TEMPLATES
        return Reply(reply_text, command, language, flash, outcome.charged)

    def unavailable(self, command: Command) -> Reply:
        return Reply(self.catalogue.render("unavailable", DEFAULT_LANGUAGE), command)

    # -- one handler per command -------------------------------------------------------------

    def _answer(self, uow, command: Command, report, key: str) -> Outcome:
        handler = {
            Kind.PREPAID_BALANCE: self._prepaid_balance,
            Kind.POSTPAID_BALANCE: self._postpaid_balance,
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
            return handler(uow, command, report, key)
        except InsufficientBalance:
            fee = self._fee(command.short_number)
            log.info("sms %s from %s refused: balance below the %s AZN fee, not charged",
                     command.kind.value, mask(report.msisdn), fee)
            return Outcome("insufficient_balance", {"fee": fmt_fee(fee)})

    def _take_fee(self, uow, command: Command, report, key: str):
        charge = services.charge_sms(uow, report.msisdn, command.short_number, key)
        if charge.duplicate:
            log.info("sms %s from %s: fee already taken for %s", command.kind.value, mask(report.msisdn), key)
        return charge

    def _charge(self, uow, command: Command, report, key: str) -> Decimal:
        """The fee taken now (nothing for a retry whose fee was taken before)."""
        charge = self._take_fee(uow, command, report, key)
        return Decimal(0) if charge.duplicate else charge.fee

    def _charge_reporting(self, uow, command: Command, report, key: str):
        """(fee taken now, the line's figures after it)."""
        charge = self._take_fee(uow, command, report, key)
        if charge.duplicate:  # the figures come with a fresh charge only
            return Decimal(0), services.balance_report(uow, report.msisdn)
        return charge.fee, charge.report

    def _prepaid_balance(self, uow, command, report, key) -> Outcome:
        if report.plan != "prepaid":
            log.info("2112 from postpaid %s: told to use 650, not charged", mask(report.msisdn))
            return Outcome("use_650")
        charged, fresh = self._charge_reporting(uow, command, report, key)
        return Outcome("prepaid_balance", self._prepaid_figures(fresh, report.language), charged)

    def _postpaid_balance(self, uow, command, report, key) -> Outcome:
        if report.plan != "postpaid":
            log.info("650 from prepaid %s: told to use 2112, not charged", mask(report.msisdn))
            return Outcome("use_2112")
        charged, fresh = self._charge_reporting(uow, command, report, key)
        return Outcome("postpaid_balance", self._postpaid_figures(fresh), charged)

    def _other_number(self, command: Command) -> str | None:
        try:
            return normalize(command.argument)
        except InvalidMsisdn:
            return None

    def _grant_refusal(self, command, report) -> Outcome | None:
        """What makes a grant/revoke impossible, answered free before anything is charged."""
        if report.plan != "postpaid":
            log.info("650 %s from prepaid %s: refused, not charged", command.kind.value, mask(report.msisdn))
            return Outcome("grant_needs_postpaid")
        if command.kind is Kind.REVOKE_ALL:
            return None
        other = self._other_number(command)
        if other is None:
            log.info("650 %s from %s: invalid number, not charged", command.kind.value, mask(report.msisdn))
            return Outcome("invalid_number")
        if other == report.msisdn:
            return Outcome("grant_self")
        return None

    # what `+<number>` and `-<number>` do: (billing service, answer when it changed something, when not)
    _ONE_GRANT = {
        Kind.GRANT: (services.grant_access, "grant_made", "grant_exists"),
        Kind.REVOKE: (services.revoke_access, "revoke_done", "revoke_none"),
    }

    def _change_one_grant(self, uow, command, report, key) -> Outcome:
        refusal = self._grant_refusal(command, report)
        if refusal:
            return refusal
        other = self._other_number(command)
        charged = self._charge(uow, command, report, key)
        change, done, unchanged = self._ONE_GRANT[command.kind]
        changed = change(uow, report.msisdn, other)
        return Outcome(done if changed else unchanged, {"number": fmt_number(other)}, charged)

    def _revoke_all(self, uow, command, report, key) -> Outcome:
        refusal = self._grant_refusal(command, report)
        if refusal:
            return refusal
        charged = self._charge(uow, command, report, key)
        removed = services.revoke_all(uow, report.msisdn)
        if not removed:
            return Outcome("revoke_all_none", charged=charged)
        return Outcome("revoke_all_done", {"count": str(removed)}, charged)

    def _shared_balance(self, uow, command, report, key) -> Outcome:
        other = self._other_number(command)
        if other == report.msisdn:
            return self._postpaid_balance(uow, command, report, key) if report.plan == "postpaid" \
                else Outcome("use_2112")
        try:
            owner = services.shared_report(uow, report.msisdn, command.argument)
        except AccessDenied:
            uow.rollback()
            log.info("650 shared balance for %s refused, not charged", mask(report.msisdn))
            return Outcome("shared_refused")
        uow.rollback()
        charged = self._charge(uow, command, report, key)
        values = {"number": fmt_number(owner.msisdn)}
        if owner.plan == "postpaid":
            return Outcome("shared_postpaid", {**values, **self._postpaid_figures(owner)}, charged)
        figures = self._prepaid_figures(owner, report.language)
        return Outcome("shared_prepaid", {**values, "balance": figures["balance"], "expires": figures["expires"]}, charged)

    def _line_info(self, uow, command, report, key) -> Outcome:
        charged, fresh = self._charge_reporting(uow, command, report, key)
        roaming = self.catalogue.template("roaming_on" if fresh.roaming else "roaming_off", report.language)
        title = fresh.tariff.title.get(report.language) or fresh.tariff.name
        return Outcome("line_info", {"tariff": title, "roaming": roaming}, charged)

    def _card_check(self, uow, command, report, key) -> Outcome:
        charged = self._charge(uow, command, report, key)
        try:
            card = services.card_status(uow, command.argument)
        except UnknownCard:
            return Outcome("card_unknown", {"serial": command.argument}, charged)
        if not card.used:
            return Outcome("card_unused", {"serial": card.serial}, charged)
        return Outcome("card_used", {"serial": card.serial, "when": fmt_when(card.used_at, report.language)}, charged)

    def _friend_credit_reply(self, uow, command, report, key) -> Outcome:
        """The friend's YES/NO to a credit request (seed 003: confirmed within 30 minutes). Free: the
        credit itself carries the service's fees."""
        try:
            answer = services.answer_friend_request_by_sms(uow, report.msisdn, command.argument, key)
        except CreditRefused as refused:
            if refused.reason == "unclear-reply":
                return Outcome("usage_700")
            log.info("700 from %s: credit refused (%s)", mask(report.msisdn), refused.reason)
            return Outcome("friend_credit_refused")
        except NoFriendRequest:
            return Outcome("friend_credit_none")
        except FriendRequestExpired:
            return Outcome("friend_credit_expired")
        asker = {"number": fmt_number(answer.requester)}
        if answer.credit is None:
            return Outcome("friend_credit_declined", asker)
        return Outcome("friend_credit_sent", {**asker, "balance": fmt_azn(answer.credit.amount)})

    def _usage(self, uow, command, report, key) -> Outcome:
        log.info("sms to %s from %s not understood: usage hint, not charged", command.short_number, mask(report.msisdn))
        values = {"fee": fmt_fee(self._fee(command.short_number))} if command.short_number in FEE_HINTS else {}
        return Outcome(f"usage_{command.short_number}", values)

    def _not_served(self, uow, command, report, key) -> Outcome:
        log.info("sms to unserved number %s from %s: not charged", command.short_number, mask(report.msisdn))
        return Outcome("not_served")

    # -- figures --------------------------------------------------------------------------------

    def _fee(self, short_number: str) -> Decimal:
        return self.core.tariffs.info_sms_fee(short_number)

    @staticmethod
    def _prepaid_figures(report, language: str) -> dict:
        return {
            "balance": fmt_azn(report.balance),
            "expires": fmt_date(report.balance_expires, language),
            "ends": fmt_date(report.subscription_ends, language),
        }

    @staticmethod
    def _postpaid_figures(report) -> dict:
        return {"billed": fmt_azn(report.billed), "current": fmt_azn(report.current), "advance": fmt_azn(report.advance)}

    def _render(self, outcome: Outcome, language: str) -> str:
        return self.catalogue.render(outcome.template, language, **outcome.values)


_services: dict[int, SmsService] = {}


def service_for(core) -> SmsService:
    """One checked catalogue per core (loading it checks every template)."""
    service = _services.get(id(core))
    if service is None or service.core is not core:
        service = _services[id(core)] = SmsService(core)
    return service


def handle_sms(core, sender: str, to: str, text: str | None, key: str) -> Reply:
    return service_for(core).handle(sender, to, text, key)
