"""Fuzzing the parsers a subscriber's or Asterisk's input meets first: the SMS command parser, the
USSD code parser, and the AGI environment reader and reply parser. Bounded (a few hundred examples
each); anything they ever found stays below as an @example. The properties themselves are in
parser_properties.py, which the coverage-guided atheris runs check too (test_atheris_parsers.py)."""
from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from .parser_properties import agi_environment_holds, agi_reply_holds, sms_command_holds, ussd_request_holds

FUZZ = settings(max_examples=400, deadline=None)

# Digits of other scripts (Arabic-Indic, Devanagari, full-width), blanks handsets pad with, and the
# characters our grammars are made of.
ODD_DIGITS = "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９"
ALPHABET = st.sampled_from(list("0123456789*#+- ()YESyesNOno\t\n\u00a0\u200b\ufeffəşğıДаНет" + ODD_DIGITS))
grammar_text = st.text(ALPHABET, max_size=40)
any_text = st.text(max_size=120)
short_numbers = st.sampled_from(["2112", "650", "1005", "1003", "700", "+2112", " tel:650 ", "SMS:1003", "9999", ""])
numbers = st.from_regex(r"\A[+-]?\s?(\+?994|0)?[0-9]{2}[ -]?[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{2}\Z")


@FUZZ
@given(to=short_numbers | any_text, text=st.none() | any_text | grammar_text | numbers)
@example(to="1003", text="١٢٣٤٥٦٧٨٩٠")  # another script's digits are not a serial
@example(to="650", text="+ ٠٥٠١٢٣٤٥٦٧")
def test_the_sms_parser_answers_every_text_with_a_command_whose_argument_is_ascii(to, text):
    sms_command_holds(to, text)


ussd_codes = st.from_regex(r"\A\s?\*(1[01][0-9]|650|700|711)([*#][0-9]{0,12}){0,3}#?\s?(YES)?\Z") | grammar_text


@FUZZ
@given(code=ussd_codes | any_text)
@example(code="*100*٣#")  # an Arabic-Indic 3 is not pack 3
@example(code="*104*١٢٣٤٥٦٧٨#")
@example(code="*700*01*+٩٩٤٥٠١٢٣٤٥٦٧#")
def test_the_ussd_parser_answers_every_code_with_a_known_action_and_ascii_digits(code):
    ussd_request_holds(code)


env_line = st.text(st.characters(blacklist_characters="\r\n"), max_size=60)


@FUZZ
@given(lines=st.lists(env_line, max_size=30), end=st.sampled_from(["\n\n", "\n", ""]))
def test_the_agi_environment_reader_takes_any_lines_or_refuses_them_as_an_agi_error(lines, end):
    agi_environment_holds("\n".join(lines) + end)


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
    agi_reply_holds(replies)
