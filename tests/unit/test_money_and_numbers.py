from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import InvalidAmount, InvalidMsisdn
from billing.money import fmt_azn, from_units, manat_qepik, parse_amount, to_units
from billing.msisdn import mask, normalize


@pytest.mark.parametrize("text", ["+994501234567", "994501234567", "0501234567", "501234567", " 050 123 45 67 "])
def test_the_four_forms_of_a_number_are_stored_in_e164(text):
    assert normalize(text) == "+994501234567"


@pytest.mark.parametrize("text", ["", "12345", "+74951234567", "00994501234567", "050123456x", "+9945012345678"])
def test_other_numbers_are_refused_with_the_accepted_forms_named(text):
    with pytest.raises(InvalidMsisdn, match="0501234567"):
        normalize(text)


def test_masked_numbers_keep_only_prefix_and_last_digits():
    assert mask("+994501234567") == "+99450***4567"


def test_amounts_keep_four_places_exactly():
    assert parse_amount("0.0236") == Decimal("0.0236")
    assert to_units(Decimal("0.0236")) == 236
    assert from_units(236) == Decimal("0.0236")


@pytest.mark.parametrize("text", ["-1", "abc", "1.00001", "NaN", "Infinity", "1e9"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(InvalidAmount):
        parse_amount(text)


@pytest.mark.parametrize("amount, shown, spoken", [
    ("0.0236", "0.02", (0, 2)),
    ("0.005", "0.01", (0, 1)),   # half up, never banker's rounding
    ("0.0049", "0.00", (0, 0)),
    ("12.4850", "12.49", (12, 49)),
    ("1000000", "1000000.00", (1000000, 0)),
])
def test_display_and_speech_round_half_up_to_qepik(amount, shown, spoken):
    assert fmt_azn(Decimal(amount)) == shown
    assert manat_qepik(Decimal(amount)) == spoken


@given(st.integers(min_value=0, max_value=10_000_000_000))
def test_units_round_trip_exactly(units):
    assert to_units(from_units(units)) == units
