"""Parsing, quantising and formatting of money. Amounts are `Decimal`, never `float`."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal

CURRENCY = "CNY"
# NUMERIC(18,4) in the database: four decimal places of a yuan.
STORAGE_PLACES = 4
STORAGE_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)
MAX_CHARGE = Decimal("1000000")

# At most 14 integer digits: what NUMERIC(18,4) can hold.
_PLAIN_DECIMAL = re.compile(r"\d{1,14}(?:\.\d{1,20})?", re.ASCII)  # ASCII: no "١٢"


class InvalidAmount(ValueError):
    """An amount that is not a plain positive decimal within the allowed places and bounds."""


def parse_amount(raw: object, *, places: int = STORAGE_PLACES, maximum: Decimal | None = None) -> Decimal:
    """Parse a positive decimal given as a string, such as "12.50".

    Refuses JSON numbers and floats (a binary float cannot carry cents exactly), signs, exponents,
    NaN, zero, more than `places` decimal places and values above `maximum`.
    """
    if not isinstance(raw, str):
        raise InvalidAmount('amount must be a decimal string such as "12.50"')
    text = raw.strip()
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise InvalidAmount('amount must be a plain decimal such as "12.50"')
    value = Decimal(text)
    if value <= 0:
        raise InvalidAmount("amount must be greater than zero")
    if -value.as_tuple().exponent > places and value != value.quantize(Decimal(1).scaleb(-places)):
        raise InvalidAmount(f"amount has more than {places} decimal places")
    if maximum is not None and value > maximum:
        raise InvalidAmount(f"amount must not exceed {format_amount(maximum)}")
    return value.quantize(Decimal(1).scaleb(-places))


def quantize(value: Decimal) -> Decimal:
    """Round to the storage precision (banker's rounding, as accountants do)."""
    return value.quantize(STORAGE_QUANTUM, rounding=ROUND_HALF_EVEN)


def to_api(value: Decimal) -> str:
    """Money as a JSON string: exact, at least two decimals ("12.50", "0.0125")."""
    text = f"{quantize(value):f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


def format_amount(value: Decimal) -> str:
    """Money for people: thousands separators, at least two decimals ("1,234.50", "0.0125")."""
    whole, _, frac = to_api(value).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{frac}"
