"""`selfcare cdr import`: Master.csv rows as Asterisk's cdr_csv writes them (loguniqueid,
loguserfield), charged once per uniqueid, reconciled, malformed lines reported by number."""
from __future__ import annotations

from decimal import Decimal

from click.testing import CliRunner

from billing import services
from ivr.cdr import import_cdr
from ivr.channel import SimulatedChannel
from ivr.flows import run_call
from selfcare.cli import cli

PRE = "+994501234567"
D = Decimal


def row(uniqueid, billsec, number="0502223344", src=PRE, disposition="ANSWERED", userfield=None):
    userfield = f"out:{number}" if userfield is None else userfield
    return (f'"","{src}","{number}","subscribers","""{src}"" <{src}>","Local/call1@selfcare-test-caller-00000000;2",'
            f'"Local/{number}@selfcare-test-destination-00000001;1","Dial",'
            f'"Local/{number}@selfcare-test-destination,60,L(43000:10000)","2026-11-22 12:00:00",'
            f'"2026-11-22 12:00:01","2026-11-22 12:00:{billsec % 60:02d}",{billsec + 1},{billsec},"{disposition}",'
            f'"DOCUMENTATION","{uniqueid}","{userfield}"\n')


def balance(core):
    with core.reader() as uow:
        return services.balance_report(uow, PRE).balance


def test_answered_calls_are_charged_once_and_a_second_import_charges_nothing(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=D("5.00"))
    master = [row("1.1", 16), row("1.2", 46), row("1.3", 0, disposition="NO ANSWER"),
              row("1.4", 30, number="2112"), row("1.5", 40, userfield=""),
              row("1.6", 20, src="+994709998877")]
    first = import_cdr(core, master)
    assert (first.seen, first.charged_now, first.charged_amount, first.already_charged, first.free,
            first.not_answered, first.not_outgoing) == (6, 2, D("0.12"), 0, 1, 1, 1)
    assert [(n, uid) for n, uid, _ in first.refused] == [(6, "1.6")]
    assert "unknown-subscriber" in first.refused[0][2]
    assert balance(core) == D("4.88")
    second = import_cdr(core, master)
    assert (second.charged_now, second.already_charged) == (0, 2)
    assert balance(core) == D("4.88")


def test_a_call_the_hangup_handler_charged_is_already_charged_in_the_cdr(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=D("5.00"))
    run_call(core, SimulatedChannel(PRE, arguments=["0502223344", "16", "ANSWER"], uniqueid="1.7"), "outgoing-hangup")
    result = import_cdr(core, [row("1.7", 16)])
    assert (result.charged_now, result.already_charged) == (0, 1)
    assert balance(core) == D("4.96")


def test_a_call_whose_hangup_charging_did_not_run_is_caught_by_the_import(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=D("5.00"))
    result = import_cdr(core, [row("1.8", 16)])
    assert result.charged_now == 1
    run_call(core, SimulatedChannel(PRE, arguments=["0502223344", "16", "ANSWER"], uniqueid="1.8"), "outgoing-hangup")
    assert balance(core) == D("4.96")  # the late hangup report finds it charged


def test_malformed_lines_are_reported_with_their_line_number_and_change_nothing(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=D("5.00"))
    good = row("2.1", 16)
    bad_billsec = good.replace(",17,16,", ",17,sixteen,")
    master = ['"only","three","fields"\n', bad_billsec, "\n", '"unterminated,"x\n',
              row("", 16).replace('"out:', '"out:'), good]
    result = import_cdr(core, master)
    assert [n for n, _ in result.malformed] == [1, 2, 4, 5]
    assert "billsec" in result.malformed[1][1]
    assert result.charged_now == 1 and balance(core) == D("4.96")


def test_the_cli_reads_a_file_or_stdin_and_prints_the_reconciliation(core, tmp_path):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=D("5.00"))
    master = tmp_path / "Master.csv"
    master.write_text(row("3.1", 16) + "garbage\n")
    args = ["--db", core.db_url, "--now", "2026-11-22T12:00", "cdr", "import"]
    first = CliRunner().invoke(cli, args + [str(master)])
    assert first.exit_code == 1, first.output
    assert first.output.splitlines()[0].startswith("calls seen 1: charged now 1 (0.0400 AZN), already charged 0")
    assert "malformed line 2: expected 18 fields" in first.output
    again = CliRunner().invoke(cli, args + ["-"], input=row("3.1", 16))
    assert again.exit_code == 0 and "charged now 0 (0.0000 AZN), already charged 1" in again.output
