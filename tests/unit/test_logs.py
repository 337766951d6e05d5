"""No personal number in a log line: messages, exceptions and keys included."""
import logging

from billing.msisdn import mask_numbers
from selfcare.logs import MaskingFormatter


def test_numbers_are_masked_in_every_form_a_log_line_can_carry_them():
    assert mask_numbers("no subscriber +994501234567") == "no subscriber ***4567"
    assert mask_numbers("agi_callerid: 994551234567") == "agi_callerid: ***4567"
    assert mask_numbers("billrun:0501234567:2026-12-10:notify") == "billrun:***4567:2026-12-10:notify"
    assert mask_numbers("already masked +99450***4567, ref 3f2a9b1c0d4e") == "already masked +99450***4567, ref 3f2a9b1c0d4e"


def test_a_traceback_is_masked_too():
    formatter = MaskingFormatter("%(message)s")
    try:
        raise LookupError("no line +994501234567")
    except LookupError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "sms from %s failed", ("+99450***4567",),
                                   exc_info=__import__("sys").exc_info())
    line = formatter.format(record)
    assert "LookupError: no line ***4567" in line and "1234567" not in line
