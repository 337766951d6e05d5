"""The one SMS parser: what each short number understands."""
import pytest

from sms.commands import Kind, parse


@pytest.mark.parametrize("to,text,kind,arg", [
    ("2112", "", Kind.PREPAID_BALANCE, None),
    ("+2112", "  \u00a0 ", Kind.PREPAID_BALANCE, None),
    ("650", "", Kind.POSTPAID_BALANCE, None),
    ("1005", "", Kind.LINE_INFO, None),
    ("650", "+0501234567", Kind.GRANT, "0501234567"),
    ("650", "+ 050 123 45 67", Kind.GRANT, "0501234567"),
    ("650", "+994501234567", Kind.GRANT, "994501234567"),
    ("650", "-0501234567", Kind.REVOKE, "0501234567"),
    ("650", "-", Kind.REVOKE_ALL, None),
    ("650", " - ", Kind.REVOKE_ALL, None),
    ("650", "0551234567", Kind.SHARED_BALANCE, "0551234567"),
    ("1003", "1000000001", Kind.CARD_CHECK, "1000000001"),
    ("1003", "1000-000-001", Kind.CARD_CHECK, "1000000001"),
])
def test_each_short_number_understands_its_commands(to, text, kind, arg):
    command = parse(to, text)
    assert (command.kind, command.argument) == (kind, arg)
    assert command.short_number == to.lstrip("+")


@pytest.mark.parametrize("to,text", [
    ("2112", "balance"), ("1005", "x"), ("1003", "123456789"), ("1003", "12345678901"), ("1003", ""),
    ("650", "+"), ("650", "hello"), ("650", "--0501234567"), ("650", "+abc"),
])
def test_anything_else_gets_the_free_usage_hint(to, text):
    command = parse(to, text)
    assert command.kind is Kind.USAGE and command.free


def test_a_number_this_bot_does_not_serve_is_answered_free():
    assert parse("7777", "").kind is Kind.NOT_SERVED
