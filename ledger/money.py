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
from ledger.validation import Digit, digit_spans, integer_pattern, render_digits

CURRENCY = "CNY"
# NUMERIC(18,4) in the database: four decimal places of a yuan.
STORAGE_PLACES = 4
STORAGE_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)
MAX_CHARGE = Decimal("1000000")

# At most 14 integer digits: what NUMERIC(18,4) can hold.
INTEGER_DIGITS, FRACTION_DIGITS = 14, 20
EXACT_DECIMAL = re.compile(rf"[0-9]{{1,{INTEGER_DIGITS}}}(?:\.[0-9]{{1,{FRACTION_DIGITS}}})?")
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


def amount_pattern(*, places: int, maximum: Decimal, minimum: Decimal | None = None) -> str:
    """The strings `parse_amount(raw, places=places, maximum=maximum)` takes, at least `minimum`
    (default: any positive amount), as one anchored regular expression that Python, JSON Schema
    (ECMA-262) and pydantic (Rust) read alike: exact decimals (EXACT_DECIMAL) whose digits past
    `places` decimals are zeros, within the bounds. Both bounds have at most `places` decimals."""
    unit = Decimal(1).scaleb(-places)
    low = int((minimum or unit) / unit)
    high = min(int(maximum / unit), 10 ** (INTEGER_DIGITS + places) - 1)
    assert places >= 1 and 0 < low <= high and low * unit == (minimum or unit) and high * unit <= maximum
    whole_low, fraction_low = divmod(low, 10**places)
    whole_high, fraction_high = divmod(high, 10**places)
    top = 10**places - 1
    if whole_low == whole_high:
        branches = [(whole_low, whole_low, fraction_low, fraction_high)]
    else:  # the first and last whole numbers may take only part of the fractions; those between, all
        first = whole_low if fraction_low == 0 else whole_low + 1
        last = whole_high if fraction_high == top else whole_high - 1
        branches = [(whole_low, whole_low, fraction_low, top)] if first > whole_low else []
        branches += [(first, last, 0, top)] if first <= last else []
        branches += [(whole_high, whole_high, 0, fraction_high)] if last < whole_high else []
    alternatives = [
        f"(?:{integer_pattern(a, b, max_digits=INTEGER_DIGITS)}){_fractions(f, g, places)}" for a, b, f, g in branches
    ]
    return f"^(?:{'|'.join(alternatives)})$"


def _fractions(low: int, high: int, places: int) -> str:
    """The written decimals (a point and 1 to FRACTION_DIGITS digits, or none for .0) whose first
    `places` digits, padded with zeros, are from `low` to `high`, and whose other digits are zeros."""
    spans = digit_spans(str(low).zfill(places), str(high).zfill(places))
    if spans == [[(0, 9)] * places]:  # any
        return rf"(?:\.[0-9]{{1,{places}}}0{{0,{FRACTION_DIGITS - places}}})?"
    if spans == [[(0, 0)] * places]:  # none
        return rf"(?:\.0{{1,{FRACTION_DIGITS}}})?"
    return "(?:" + "|".join(_written(span) for span in spans) + ")"


def _written(span: list[Digit]) -> str:
    """A span of `places` digit classes as its written decimals: its trailing digits may be left
    out where each could be 0 (".5" is ".50"), and zeros may follow it up to FRACTION_DIGITS."""
    rest = f"0{{0,{FRACTION_DIGITS - len(span)}}}"
    for i in reversed(range(1, len(span))):
        rest = render_digits([span[i]]) + rest
        if all(low == 0 for low, _ in span[i:]):
            rest = f"(?:{rest})?"
    written = rf"\.{render_digits([span[0]])}{rest}"
    return f"(?:{written})?" if all(low == 0 for low, _ in span) else written


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
