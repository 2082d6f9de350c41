import re
from decimal import Decimal
from typing import Annotated

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from ledger.money import InvalidAmount, amount_pattern, format_amount, parse_amount, to_api


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.50", Decimal("12.5000")),
        ("0.0001", Decimal("0.0001")),
        ("7", Decimal("7.0000")),
        ("1.230000", Decimal("1.2300")),
        ("1000000", Decimal("1000000.0000")),
    ],
)
def test_parse_amount_accepts_plain_positive_decimals(raw, expected):
    assert parse_amount(raw, maximum=Decimal(1_000_000)) == expected


@pytest.mark.parametrize(
    "raw",
    [
        12.5,
        12,
        None,
        True,
        ["1"],
        "",
        "abc",
        "-1",
        "+1",
        "0",
        "0.00",
        "1e3",
        "NaN",
        "Infinity",
        "1.00001",
        "1,00",
        "1.",
        ".5",
        "0x10",
        "1 000",
        " 3.10 ",  # SPEC 19: no spaces, signs, exponents or other digit forms
        "3.10\n",
        "１０",
        "١٢",
    ],
)
def test_parse_amount_refuses_everything_else(raw):
    with pytest.raises(InvalidAmount):
        parse_amount(raw)


def test_parse_amount_refuses_more_places_than_asked_and_above_maximum():
    with pytest.raises(InvalidAmount, match="more than 2 decimal places"):
        parse_amount("1.005", places=2)
    with pytest.raises(InvalidAmount, match="exceed"):
        parse_amount("1000000.0001", maximum=Decimal(1_000_000))


@pytest.mark.parametrize(
    ("value", "api", "display"),
    [
        (Decimal("12.5"), "12.50", "12.50"),
        (Decimal("0.0125"), "0.0125", "0.0125"),
        (Decimal("1234567.1"), "1234567.10", "1,234,567.10"),
        (Decimal("-3.2"), "-3.20", "-3.20"),
        (Decimal("0"), "0.00", "0.00"),
        (Decimal("10.12340"), "10.1234", "10.1234"),
    ],
)
def test_money_is_shown_exactly_with_at_least_two_decimals(value, api, display):
    assert to_api(value) == api
    assert format_amount(value) == display


# (places, maximum, minimum): a charge's, the default top-up's, and bounds inside whole numbers
AMOUNT_RULES = [
    (4, Decimal(1_000_000), None),
    (2, Decimal("1000.00"), Decimal("1.00")),
    (2, Decimal("999.99"), Decimal("0.50")),
    (2, Decimal("12.34"), Decimal("12.30")),
    (2, Decimal(10**15), None),  # past NUMERIC's 14 integer digits: those are the bound
]
AMOUNT_LIKE = st.one_of(
    st.from_regex(r"\A[0-9]{1,16}(\.[0-9]{0,22})?\Z"),
    st.from_regex(r"\A0{0,15}[0-9]{0,8}(\.[0-9]{0,5}0{0,18})?\Z"),
    st.text(alphabet="0123456789.+-e \n１", max_size=25),
    st.decimals(min_value=0, max_value=10**15, places=6).map(lambda d: f"{d:f}"),
)


def matches(schema: TypeAdapter, raw: str) -> bool:
    try:
        schema.validate_python(raw)
    except ValidationError:
        return False
    return True


def parses(raw: str, places: int, maximum: Decimal, minimum: Decimal | None) -> bool:
    try:
        value = parse_amount(raw, places=places, maximum=maximum)
    except InvalidAmount:
        return False
    return minimum is None or value >= minimum


@pytest.mark.parametrize(("places", "maximum", "minimum"), AMOUNT_RULES)
def test_an_amount_pattern_matches_exactly_what_parse_amount_takes(places, maximum, minimum):
    pattern = amount_pattern(places=places, maximum=maximum, minimum=minimum)
    by_python = re.compile(pattern)
    by_pydantic = TypeAdapter(Annotated[str, Field(pattern=pattern)])  # pydantic's Rust engine

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(AMOUNT_LIKE | st.from_regex(pattern.replace("$", r"\Z")))
    def agree(raw):
        taken = parses(raw, places, maximum, minimum)
        assert bool(by_python.fullmatch(raw)) == taken, raw
        assert matches(by_pydantic, raw) == taken, raw

    agree()
    edges = [f"{maximum}", f"{maximum}1", "0", "0.0", "0.0001", "00000000000001", "000000000000001", "1." + "0" * 20]
    assert [bool(by_python.fullmatch(e)) for e in edges] == [parses(e, places, maximum, minimum) for e in edges]


def test_a_charges_amount_pattern_reads_the_bounds_of_spec_5():
    charge = re.compile(amount_pattern(places=4, maximum=Decimal(1_000_000)))
    assert [bool(charge.fullmatch(a)) for a in ("0.0001", "12.5", "1000000", "1000000.0000", "007.50")] == [True] * 5
    assert [bool(charge.fullmatch(a)) for a in ("0", "0.00", "1.00001", "1000000.0001", "1000001")] == [False] * 5
