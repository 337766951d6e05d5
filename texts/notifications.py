"""The text of an outbox message: billing enqueues a template's name and its values (strings in
JSON), this words them in the subscriber's language from the `notifications` section."""
from __future__ import annotations

from billing.outbox import Outgoing

from .catalogue import Catalogue


TOP_UP_REASONS = ("topup", "card")  # billing.outbox.PAYMENT_KINDS: money the subscriber paid in


def _entry(message: Outgoing) -> str:
    if message.template == "balance-changed":  # one message, worded per account...
        account = message.params.get("account", "balance")
        if account == "balance" and message.params.get("reason") in TOP_UP_REASONS:
            return "topped-up-balance"  # ...and a prepaid top-up with seed 001's advice
        return f"balance-changed-{account}"
    return message.template


def render(catalogue: Catalogue, message: Outgoing, tariffs, offers) -> str:
    section = catalogue["notifications"]
    key = _entry(message)
    if key not in section:
        raise ValueError(f"no text for outbox template {message.template!r}")
    language = message.language
    values = dict(message.params)
    if "pack" in values:
        pack = offers.packs.by_code(str(values["pack"]))
        values["pack"] = pack.title.get(language, pack.code) if pack else str(values["pack"])
    if "tariff" in values and values["tariff"] in tariffs.tariffs:
        values["tariff"] = tariffs.get(values["tariff"]).title.get(language, values["tariff"])
    if "plan" in values:
        values["plan"] = f"plan-{values['plan']}"
    if "reason" in values:  # call, data, pack, topup, card, credit:nar ...: worded by its entry
        values["reason"] = f"reason-{str(values['reason']).split(':')[0]}"
    return section.render_from(key, language, values)
