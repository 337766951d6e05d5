"""What a subscriber is shown never promises money they do not have, nor hides money they owe.

Through the paths subscribers use (SMS, USSD, the call flow, the CLI), each contradiction the seeds'
rules allowed before: a balance shown above what a fee needs, a bill paid as shown that stayed owed.
"""
from datetime import datetime
from decimal import Decimal

from click.testing import CliRunner

from billing import services
from selfcare.cli import cli
from sms.service import handle_sms
from ussd.cli import ussd_command

PRE, POST = "+994501234567", "+994551234567"


def test_a_balance_below_a_fee_is_shown_below_it_everywhere(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("0.0164"), language="en")
    assert ussd_command(core, PRE, "*111*1*7#").startswith("END Balance 0.01 AZN.")
    refused = handle_sms(core, PRE, "2112", "", "low-1")
    assert refused.text == "Your balance is too low for this request (0.02 AZN). Nothing was charged."
    from ivr.simulate import simulate_call
    heard = [prompt for prompt, _ in simulate_call(core, PRE, "2112", "9")]
    assert heard[heard.index("your-balance-is") + 1:heard.index("your-tariff-is")] == ["num/1", "cur/qepik-1"]


def test_a_bill_is_settled_in_whole_qepik_and_the_rest_carried_until_it_can_be_paid(core, clock, tmp_path):
    clock.set(datetime(2026, 11, 20, 12, 0))
    with core.uow() as uow:
        services.add_subscriber(uow, POST, "postpaid", current=Decimal("1.0236"), bill_day=24, language="en")
    clock.set(datetime(2026, 11, 24, 23, 30))
    with core.uow() as uow:
        assert services.run_due_bill_cycles(uow) == 1
    # 1.02 billed; 0.0036 carried in the current amount, shown as the 0.01 it makes owed
    assert ussd_command(core, POST, "*650#") == "END Billed 1.02 AZN, current 0.01 AZN, advance 0.00 AZN. Bill day: 24."
    with core.uow() as uow:
        services.topup(uow, POST, "1.02", "pay-bill")
    with core.uow() as uow:
        report = services.balance_report(uow, POST)
    assert (report.billed, report.current) == (Decimal("0.0000"), Decimal("0.0036"))

    db, run = core.db_url, CliRunner()
    moved = run.invoke(cli, ["--db", db, "--now", "2026-11-25T10:00", "plan", POST, "prepaid"])
    assert moved.exit_code == 2
    assert moved.output == "error: pay 0.01 AZN first: the bill and current usage are settled before a move to prepaid\n"
    with core.uow() as uow:
        services.topup(uow, POST, "0.01", "pay-rest")
    assert run.invoke(cli, ["--db", db, "--now", "2026-11-25T10:05", "plan", POST, "prepaid"]).exit_code == 0
    with core.uow() as uow:
        report = services.balance_report(uow, POST)
        assert services.audit(uow) == []
    assert (report.plan, report.balance) == ("prepaid", Decimal("0.0064"))
