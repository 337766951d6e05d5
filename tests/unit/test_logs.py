"""No personal number in a log line: messages, exceptions and keys included."""
import logging

from selfcare.logs import MaskingFormatter, mask_numbers


def test_numbers_are_masked_in_every_form_a_log_line_can_carry_them():
    assert mask_numbers("no subscriber +994501234567") == "no subscriber +99450***4567"
    assert mask_numbers("agi_callerid: 994551234567") == "agi_callerid: 99455***4567"
    assert mask_numbers("billrun:0501234567:2026-12-10:notify") == "billrun:050***4567:2026-12-10:notify"
    assert mask_numbers("already masked +99450***4567, card 4000000001") == "already masked +99450***4567, card 4000000001"


def test_a_traceback_is_masked_too():
    formatter = MaskingFormatter("%(message)s")
    try:
        raise LookupError("no line +994501234567")
    except LookupError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "sms from %s failed", ("+99450***4567",),
                                   exc_info=__import__("sys").exc_info())
    line = formatter.format(record)
    assert "LookupError: no line +99450***4567" in line and "1234567" not in line
