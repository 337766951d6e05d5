"""The `selfcare` command: the operator's interface of DESIGN.md, on a temporary SQLite file."""
import json
from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from selfcare.cli import cli


@pytest.fixture
def run(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, ["--db", db, "--now", "2026-11-22T12:00", *args], catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def test_subscriber_show_json_carries_the_documented_fields(run):
    assert run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "12.48", "--lang", "ru").exit_code == 0
    assert run("subscriber", "add", "551234567", "--plan", "postpaid", "--billed", "25.30", "--current", "7.15",
               "--advance", "5", "--bill-day", "10").exit_code == 0
    prepaid = json.loads(run("subscriber", "show", "+994501234567", "--json").output)
    postpaid = json.loads(run("subscriber", "show", "994551234567", "--json").output)
    assert prepaid["msisdn"] == "+994501234567" and prepaid["plan"] == "prepaid" and prepaid["language"] == "ru"
    assert (prepaid["balance"], prepaid["balance_expires"], prepaid["subscription_ends"]) == ("12.4800", "2027-02-20", "2027-08-19")
    assert prepaid["status"] == "active" and prepaid["nar_debt"] == "0.0000"
    assert (postpaid["billed"], postpaid["current"], postpaid["advance"], postpaid["bill_day"]) == ("25.3000", "7.1500", "5.0000", 10)


@pytest.mark.parametrize("args, message", [
    (("subscriber", "show", "12345"), "not a mobile number"),
    (("subscriber", "show", "0509999999"), "not a subscriber"),
    (("topup", "0509999999", "5"), "not a subscriber"),
    (("topup", "0501234567", "abc"), "not a payment: 'abc'"),
    (("topup", "0501234567", "1e3"), "not a payment: '1e3' (manat with at most 2 places, e.g. 5 or 12.50)"),
    (("topup", "0501234567", "0.001"), "not a payment: '0.001'"),
    (("subscriber", "add", "0502223344", "--plan", "prepaid", "--activated", "2026-12-01"),
     "activation date 2026-12-01 is after today (2026-11-22)"),
    (("card", "add", "123", "--pin", "1234", "--value", "5"), "10 digits"),
])
def test_bad_input_exits_2_with_one_clear_line_and_changes_nothing(run, args, message):
    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "1")
    result = run(*args)
    assert result.exit_code == 2 and message in result.output
    assert json.loads(run("subscriber", "show", "0501234567", "--json").output)["balance"] == "1.0000"


def test_demo_is_idempotent_and_the_audit_passes(run):
    assert "7 added" in run("demo").output
    assert "0 added" in run("demo").output
    audit = run("audit")
    assert audit.exit_code == 0 and "5 lines" in audit.output


def test_topup_prints_the_new_balance_and_a_repeated_key_applies_once(run):
    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "1")
    assert "balance 6.0000" in run("topup", "0501234567", "5", "--key", "pay-1").output
    assert "already applied" in run("topup", "0501234567", "5", "--key", "pay-1").output


def test_sms_ussd_call_and_say_answer_from_the_shell(run):
    run("demo")
    assert "AZN" in run("sms", "0501234567", "2112").output
    assert run("ussd", "0551234567", "*650#").output.startswith("END ")
    heard = run("call", "0501234567", "2112", "--press", "9").output.splitlines()
    assert heard[0].startswith("welcome-2112\t") and heard[-1].startswith("goodbye\t")
    assert run("say", "amount", "1234.50", "--lang", "ru").output.strip() == \
        "одна тысяча двести тридцать четыре маната пятьдесят гяпиков"


def test_audit_fails_when_a_balance_was_changed_behind_the_ledger(run, tmp_path):
    import sqlite3

    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "1")
    with sqlite3.connect(tmp_path / "cli.db") as db:
        db.execute("UPDATE subscriber SET balance_units = balance_units + 100")
    result = run("audit")
    assert result.exit_code == 1 and "MISMATCH +994501234567 balance" in result.output


def test_sms_to_650_takes_plus_and_minus_numbers_as_a_subscriber_types_them(run):
    run("subscriber", "add", "0551112233", "--plan", "postpaid", "--lang", "en", "--bill-day", "10")
    granted = run("sms", "0551112233", "650", "+0502223344")
    revoked = run("sms", "0551112233", "650", "-0502223344")
    nobody = run("sms", "0551112233", "650", "-")
    assert granted.exit_code == revoked.exit_code == nobody.exit_code == 0
    assert granted.output == "0502223344 can now see your balance information. To revoke, send -0502223344 to 650.\n"
    assert revoked.output == "0502223344 no longer has access to your balance information.\n"
    assert nobody.output == "Nobody had access to your balance information.\n"


@pytest.mark.parametrize("variable,file,old,new,message", [
    ("SELFCARE_TEXTS", "texts/sms.toml", 'ru = "Карта {serial} не использована."\n', "",
     r"sms.toml \[card-unused\] ru: missing"),
    ("SELFCARE_OFFERS", "billing/offers.toml", 'price = "3.00"', 'price = "three"', "price"),
    ("SELFCARE_TARIFFS", "billing/tariffs.toml", 'title = { az = "Klass", en = "Klass", ru = "Класс" }',
     'title = { az = "Klass", en = "Klass" }', "klass"),
])
def test_a_broken_data_file_stops_every_command_with_the_entry_named(run, tmp_path, monkeypatch, variable, file,
                                                                   old, new, message):
    import re
    import shutil
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / file
    if variable == "SELFCARE_TEXTS":
        target_dir = tmp_path / "texts"
        shutil.copytree(source.parent, target_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        target, setting = target_dir / source.name, str(target_dir)
    else:
        target = setting = tmp_path / source.name
        shutil.copy(source, target)
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.setenv(variable, str(setting))
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'other.db'}", "serve"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert re.search(message, result.output, re.IGNORECASE), result.output


# -- selfcare card redeem ----------------------------------------------------------------------

def test_card_redeem_prints_what_was_applied_and_the_new_balance_once_per_key(run):
    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "1")
    assert run("card", "add", "1000000001", "--pin", "12345678901234", "--value", "5").exit_code == 0
    done = run("card", "redeem", "0501234567", "12345678901234", "--key", "card-1")
    assert done.exit_code == 0
    assert done.output == "card 1000000001: 5.00 AZN applied; balance 6.0000\n"
    again = run("card", "redeem", "0501234567", "12345678901234", "--key", "card-1")
    assert again.output == "card 1000000001: 5.00 AZN applied (already applied); balance 6.0000\n"
    assert "ok: 1 lines" in run("audit").output


def test_card_redeem_on_a_postpaid_line_pays_the_bill_first(run):
    run("subscriber", "add", "0551234567", "--plan", "postpaid", "--billed", "3", "--current", "1", "--bill-day", "10")
    run("card", "add", "1000000001", "--pin", "12345678901234", "--value", "5")
    done = run("card", "redeem", "0551234567", "12345678901234")
    assert done.output == "card 1000000001: 5.00 AZN applied; billed 0.0000, advance 2.0000\n"


def test_card_redeem_of_an_old_card_takes_its_serial(run):
    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "0")
    run("card", "add", "1000000001", "--pin", "4321", "--value", "3")
    assert run("card", "redeem", "0501234567", "4321", "--serial", "1000000001").output.startswith(
        "card 1000000001: 3.00 AZN applied; balance 3.0000")


def test_card_redeem_refusals_are_one_line_exit_2_and_change_nothing(run):
    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "1")
    run("subscriber", "add", "0502223344", "--plan", "prepaid", "--balance", "1")
    run("card", "add", "1000000001", "--pin", "12345678901234", "--value", "5")
    outputs = []
    for _ in range(5):
        wrong = run("card", "redeem", "0501234567", "11112222333344")
        assert wrong.exit_code == 2
        outputs.append(wrong.output)
    assert outputs[0] == "error: wrong PIN: nothing was topped up (4 tries left)\n"
    assert outputs[-1] == "error: wrong PIN: nothing was topped up (0 tries left)\n"
    locked = run("card", "redeem", "0501234567", "12345678901234")  # the right PIN, too late
    assert (locked.exit_code, locked.output) == (
        2, "error: too many wrong PINs from this line: card top-ups refused until 2026-11-22 13:00\n")
    bad = run("card", "redeem", "0502223344", "12ab")
    assert (bad.exit_code, bad.output) == (2, "error: a card PIN is 4 to 16 digits\n")
    assert run("card", "redeem", "0502223344", "12345678901234").exit_code == 0
    used = run("card", "redeem", "0502223344", "12345678901234")
    assert (used.exit_code, used.output) == (2, "error: card 1000000001 was used on 2026-11-22 12:00\n")
    for number, balance in (("0501234567", "1.0000"), ("0502223344", "6.0000")):
        assert json.loads(run("subscriber", "show", number, "--json").output)["balance"] == balance
    assert "ok: 2 lines" in run("audit").output


def test_selfcare_call_tops_up_with_a_card_by_its_pin_and_says_so(run):
    run("subscriber", "add", "0502223344", "--plan", "prepaid", "--balance", "3.05", "--lang", "en")
    run("card", "add", "1000000001", "--pin", "12345678901234", "--value", "5")
    heard = run("call", "0502223344", "2112", "--press", "512345678901234#9").output.splitlines()
    start = heard.index("card-enter-pin\tEnter the PIN from under the scratch panel of your card, "
                        "then press the hash key.")
    assert heard[start + 1:start + 11] == [
        "card-topped-up\tYour card has been accepted. Added to your balance:", "num/5\tfive", "cur/manat-5\tmanats",
        "your-new-balance-is\tYour new balance is", "num/8\teight", "cur/manat-5\tmanats", "word/and\tand",
        "num/5\tfive", "cur/qepik-5\tqepiks", "menu-main\t" + (
            "To hear this again, press 1. To change the language, press 2. To turn balance change SMS on or off, "
            "press 3. For safety advice, press 4. To top up with a scratch card, press 5. To end the call, press 9.")]
    assert json.loads(run("subscriber", "show", "0502223344", "--json").output)["balance"] == "8.0500"
    assert "ok: 1 lines" in run("audit").output


def test_a_reused_top_up_key_with_another_amount_is_refused_and_the_same_one_says_what_was_applied(run):
    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "1")
    assert run("topup", "0501234567", "1.00", "--key", "K1").output == "topped up 1.00 AZN; balance 2.0000\n"
    again = run("topup", "0501234567", "1", "--key", "K1")
    assert again.output == "topped up 1.00 AZN (already applied); balance 2.0000\n"
    other = run("topup", "0501234567", "2.00", "--key", "K1")
    assert other.exit_code == 2
    assert other.output == "error: key K1 was already used for a payment of 1.00 AZN, not 2.00\n"


def test_a_bad_now_is_one_clear_line(run):
    result = CliRunner().invoke(cli, ["--now", "yesterday", "audit"])
    assert result.exit_code == 2
    assert "Invalid value for '--now': not a date and time: 'yesterday' (use e.g. 2026-11-22T23:00)" in result.output
    assert "Traceback" not in result.output


def test_signin_revoke_ends_every_session_of_the_line_and_refuses_an_unknown_number(run, tmp_path):
    from billing import signin
    from billing.clock import FixedClock
    from billing.core import Core
    from billing.errors import NotSignedIn
    from billing.models import OutboxMessage

    run("subscriber", "add", "0501234567", "--plan", "prepaid", "--balance", "1")
    core = Core(f"sqlite:///{tmp_path / 'cli.db'}", clock=FixedClock(datetime(2026, 11, 22, 12, 0)))
    secrets = []
    for kind in ("api", "page"):
        with core.uow() as uow:
            request_id = signin.request_code(uow, "0501234567", "127.0.0.1")
        with core.reader() as uow:
            params = uow.session.scalars(select(OutboxMessage.params).where(
                OutboxMessage.key == f"signin:{request_id}")).one()
        with core.uow() as uow:
            secrets.append((signin.verify_code(uow, request_id, "0501234567", json.loads(params)["code"], kind).secret, kind))
    result = run("signin", "revoke", "0501234567")
    assert (result.exit_code, result.output) == (0, "+994501234567: 2 session(s) revoked\n")
    for secret, kind in secrets:
        with core.reader() as uow, pytest.raises(NotSignedIn):
            signin.authenticate(uow, secret, kind)
    assert run("signin", "revoke", "0501234567").output == "+994501234567: 0 session(s) revoked\n"
    unknown = run("signin", "revoke", "0509999999")
    assert unknown.exit_code == 2 and "+994509999999 is not a subscriber of this network" in unknown.output
    core.dispose()
