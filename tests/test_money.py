from decimal import Decimal

import pytest

from ledger.money import InvalidAmount, format_amount, parse_amount, to_api


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
