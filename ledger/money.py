"""Parsing, quantising and formatting of money. Amounts are `Decimal`, never `float`.

SPEC 19: money crosses our edges as exact strings: ASCII digits, one optional point with digits
after it; no sign, exponent, space or other digit forms. Only a page's form may first normalise what
a person typed (`normalise_typed_amount`).
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_EVEN, Decimal

from ledger.errors import InvalidRequest, LedgerError
from ledger.i18n import N_

CURRENCY = "CNY"
# NUMERIC(18,4) in the database: four decimal places of a yuan.
STORAGE_PLACES = 4
STORAGE_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)
MAX_CHARGE = Decimal("1000000")

# At most 14 integer digits: what NUMERIC(18,4) can hold.
EXACT_DECIMAL = re.compile(r"[0-9]{1,14}(?:\.[0-9]{1,20})?")
# What a person may type around an amount on a page: currency signs before, 元 or 块 after.
_TYPED_DECORATION = re.compile(r"^[¥￥]?\s*(.*?)\s*(?:元|块|块钱|CNY|RMB)?$", re.IGNORECASE)
# Thousands written with separators ("1,000", "1,000.50"): the commas go, nothing else changes.
_GROUPED_THOUSANDS = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")


class InvalidAmount(InvalidRequest):
    """An amount that is not an exact positive decimal within the allowed places and bounds."""


def parse_amount(
    raw: object,
    *,
    places: int = STORAGE_PLACES,
    maximum: Decimal | None = None,
    field: str = "amount",
    error: type[LedgerError] = InvalidAmount,
) -> Decimal:
    """Parse a positive amount given as an exact decimal string, such as "12.50".

    Refuses JSON numbers and floats (a binary float cannot carry cents exactly), spaces, signs,
    exponents, NaN, zero, other digit forms, more than `places` decimal places and values above
    `maximum`, raising `error` (InvalidAmount: 422 invalid_request) naming `field`.
    """
    if not isinstance(raw, str) or not EXACT_DECIMAL.fullmatch(raw):
        raise error(N_('Give the amount as a decimal string such as "12.50".'), field=field)
    value = Decimal(raw)
    if value <= 0:
        raise error(N_("The amount must be greater than zero."), field=field)
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise error(N_("The amount has more than %(places)d decimal places."), field=field, places=places)
    if maximum is not None and value > maximum:
        raise error(N_("The amount must not exceed ¥%(maximum)s."), field=field, maximum=maximum)
    return value.quantize(Decimal(1).scaleb(-places))


def normalise_typed_amount(raw: object) -> object:
    """What a person typed into an amount field, made exact where the intent is plain.

    Full-width digits and point become ASCII (NFKC), surrounding spaces go, and so do a leading
    ¥, a trailing 元 (块, RMB) and commas between groups of thousands ("1,000"). Anything else is
    left for `parse_amount` to refuse.
    """
    if not isinstance(raw, str):
        return raw
    text = unicodedata.normalize("NFKC", raw).strip()
    match = _TYPED_DECORATION.fullmatch(text)
    text = match.group(1) if match else text
    return text.replace(",", "") if _GROUPED_THOUSANDS.fullmatch(text) else text


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
