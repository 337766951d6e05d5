"""Fuzzing the parsers a subscriber's or Asterisk's input meets first: the SMS command parser, the
USSD code parser, and the AGI environment reader and reply parser. Bounded (a few hundred examples
each); anything they ever found stays below as an @example."""
from __future__ import annotations

import io
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ivr.agi_shim import AGIError, AgiSession
from sms.commands import Command, Kind, parse as parse_sms, short_number_of
from ussd.codes import Request, parse as parse_ussd

FUZZ = settings(max_examples=400, deadline=None)

# Digits of other scripts (Arabic-Indic, Devanagari, full-width), blanks handsets pad with, and the
# characters our grammars are made of.
ODD_DIGITS = "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９"
ALPHABET = st.sampled_from(list("0123456789*#+- ()YESyesNOno\t\n\u00a0\u200b\ufeffəşğıДаНет" + ODD_DIGITS))
grammar_text = st.text(ALPHABET, max_size=40)
any_text = st.text(max_size=120)
short_numbers = st.sampled_from(["2112", "650", "1005", "1003", "700", "+2112", " tel:650 ", "SMS:1003", "9999", ""])
numbers = st.from_regex(r"\A[+-]?\s?(\+?994|0)?[0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{2}\Z")

ASCII_NUMBER = re.compile(r"\+?[0-9]+", re.ASCII)
KNOWN_USSD_ACTIONS = {
    "dates", "postpaid-balance", "pack-menu", "pack-deactivate", "pack-stop-renewal", "pack-order", "nar-max",
    "nar-debt", "nar", "sos", "sos-debt", "credit-for-friend", "ask-friend", "friend-requests", "card-redeem",
    "card-help", "help",
}


@FUZZ
@given(to=short_numbers | any_text, text=st.none() | any_text | grammar_text | numbers)
@example(to="1003", text="١٢٣٤٥٦٧٨٩٠")  # another script's digits are not a serial
@example(to="650", text="+ ٠٥٠١٢٣٤٥٦٧")
def test_the_sms_parser_answers_every_text_with_a_command_whose_argument_is_ascii(to, text):
    command = parse_sms(to, text)
    assert isinstance(command, Command) and command.kind in Kind
    assert command.short_number == short_number_of(to)
    if command.kind in (Kind.GRANT, Kind.REVOKE, Kind.SHARED_BALANCE):
        assert ASCII_NUMBER.fullmatch(command.argument), command
    elif command.kind is Kind.CARD_CHECK:
        assert re.fullmatch(r"[0-9]{10}", command.argument, re.ASCII)
    elif command.kind is Kind.FRIEND_CREDIT_REPLY:
        assert command.argument in ("yes", "no")
    else:
        assert command.argument is None


ussd_codes = st.from_regex(r"\A\s?\*(1[01][0-9]|650|700|711)([*#][0-9]{0,12}){0,3}#?\s?(YES)?\Z") | grammar_text


@FUZZ
@given(code=ussd_codes | any_text)
@example(code="*100*٣#")  # an Arabic-Indic 3 is not pack 3
@example(code="*104*١٢٣٤٥٦٧٨#")
@example(code="*700*01*+٩٩٤٥٠١٢٣٤٥٦٧#")
def test_the_ussd_parser_answers_every_code_with_a_known_action_and_ascii_digits(code):
    request = parse_ussd(code)
    assert isinstance(request, Request) and request.action in KNOWN_USSD_ACTIONS
    if request.arg is not None:
        assert ASCII_NUMBER.fullmatch(request.arg), request


env_line = st.text(st.characters(blacklist_characters="\r\n"), max_size=60)


@FUZZ
@given(lines=st.lists(env_line, max_size=30), end=st.sampled_from(["\n\n", "\n", ""]))
def test_the_agi_environment_reader_takes_any_lines_or_refuses_them_as_an_agi_error(lines, end):
    stdin = io.StringIO("\n".join(lines) + end)
    try:
        session = AgiSession(stdin, io.StringIO())
    except AGIError:
        return  # EOF before the blank line (a hangup), too long: refused, never anything else
    assert all(key == key.strip() and key and value == value.strip() for key, value in session.env.items())


reply_lines = st.lists(
    st.sampled_from(["200 result=0", "200 result=49 endpos=1200", "200 result=-1", "200 result=-1 endpos=0",
                     "200 result= (timeout)", "510 Invalid or unknown command", "511 Command Not Permitted",
                     "520-Invalid command syntax.", "520 End of proper usage.", "HANGUP", "", "200", "200 result=1 (",
                     "999 what"]) | env_line,
    min_size=0, max_size=8)


@FUZZ
@given(replies=reply_lines)
@example(replies=["520-Invalid", "HANGUP"])  # a usage block cut by EOF
@example(replies=["200 result=1 (dtmf) endpos"])
@example(replies=["HANGUP", "520-Invalid", "usage", "HANGUP", "520 End of proper usage.", "200 result=0"])
@example(replies=["0520-x", "520 end", "200 result=0"])
def test_the_agi_reply_parser_returns_a_result_or_raises_an_agi_error_and_never_reads_past_its_reply(replies):
    stdin = io.StringIO("agi_network: yes\n\n" + "".join(f"{line}\n" for line in replies))
    session = AgiSession(stdin, io.StringIO())
    try:
        result = session.execute("STREAM FILE", "welcome-2112", '""')
    except AGIError:
        result = None
    # what the next command will read: exactly the lines after this reply, none taken from it
    assert stdin.read() == "".join(f"{line}\n" for line in replies[reply_length(replies):])
    assert result is None or "result" in result


def reply_length(replies: list[str]) -> int:
    """How many lines one reply is, as the AGI protocol says (not as the parser reads it): bare
    HANGUP lines Asterisk sends at any time, the reply's line, and for `520-` the usage block up to
    its `520 ` line (or the end of the input)."""
    taken = 0
    while taken < len(replies) and replies[taken].strip() == "HANGUP":
        taken += 1
    if taken == len(replies):
        return taken
    first = replies[taken]
    taken += 1
    code = re.match(r"\d*", first).group()  # the leading digits, read as a number (`0520` is 520)
    if code and int(code) == 520 and not first.startswith("520 "):
        while taken < len(replies) and not replies[taken].startswith("520 "):
            taken += 1
        taken = min(taken + 1, len(replies))
    return taken
