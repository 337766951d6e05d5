"""The automatic balance-change SMS (seed 000): one message per thing the subscriber did, naming
what changed on which figure with its real sign, in the order it happened."""
from decimal import Decimal

from billing import services
from sms.dispatch import Dispatcher, LogTransport
from tests.unit.packs_credit_scenarios import credit_ready_line

PRE, POST = "+994501234567", "+994551234567"


def sent_texts(core) -> list[str]:
    transport = LogTransport()
    Dispatcher(transport).run(core)
    return [text for _, text in transport.sent]


def test_postpaid_usage_raises_the_current_amount_and_says_so_with_a_plus(core):
    with core.uow() as uow:
        services.add_subscriber(uow, POST, "postpaid", current=Decimal("7.15"), bill_day=10, language="en",
                                tariff="biznes")
    with core.uow() as uow:
        services.record_data_usage(uow, POST, "10", "data-1")  # 10 MB at 0.06
    assert sent_texts(core) == [
        "Your current amount changed by +0.60 AZN (internet). Current amount: 7.75 AZN."]


def test_a_postpaid_payment_says_what_went_to_the_bill_and_what_to_the_advance(core):
    with core.uow() as uow:
        services.add_subscriber(uow, POST, "postpaid", billed=Decimal("25.30"), advance=Decimal("5.00"),
                                bill_day=10, language="ru")
    with core.uow() as uow:
        services.topup(uow, POST, "1000", "pay-1")
    assert sent_texts(core) == [
        "Платёж 1000.00 AZN: в счёт 25.30 AZN, к оплате ещё 0.00 AZN. Аванс: 979.70 AZN. "
        "Мы не просим вернуть деньги."]


def test_a_top_up_that_repays_credit_debt_names_both_parts_and_the_balance_left(core, clock):
    credit_ready_line(core, clock, PRE)
    with core.uow() as uow:
        services.take_nar_credit(uow, PRE, "nar-1", "03")  # 3.00 AZN, fee 0.60 owed with it
    sent_texts(core)  # what the credit itself said
    with core.uow() as uow:
        before = services.balance_report(uow, PRE).balance
        services.topup(uow, PRE, "5.00", "topup-after-credit")
    with core.uow() as uow:
        after = services.balance_report(uow, PRE)
    assert after.nar_debt == Decimal("0") and before + Decimal("5.00") - Decimal("3.60") == after.balance
    assert sent_texts(core) == [
        f"Top-up 5.00 AZN. Credit debt repaid: 3.60 AZN, left 0.00 AZN. New balance: {after.balance:.2f} AZN. "
        "We never ask you to send money back."]


def test_with_balance_sms_switched_off_a_repaid_debt_is_still_told(core, clock):
    credit_ready_line(core, clock, PRE)
    with core.uow() as uow:
        services.take_nar_credit(uow, PRE, "nar-2", "05")  # 0.50 AZN, fee 0.10
        services.set_balance_notifications(uow, PRE, False)
    sent_texts(core)
    with core.uow() as uow:
        services.topup(uow, PRE, "2.00", "topup-quiet")
    assert sent_texts(core) == ["0.60 AZN of credit debt was taken from your top-up. Debt left 0.00 AZN."]
