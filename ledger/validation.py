"""The input contract: raw values (form fields, JSON members, notify fields, command arguments) are
checked completely before a service acts on them.

Each check takes the raw value as it came (any type), returns a clean Python value, or raises
InvalidRequest naming the field. Text must be storable by PostgreSQL: no NUL, no lone surrogate.
Money is parsed by ledger.money (exact strings, SPEC 19).

Some checks are also written as regular expressions (`text_pattern`, `whole_number_pattern`), for
the API's schemas and document: each matches exactly the strings its check takes, and is read alike
by Python, by JSON Schema's ECMA-262 and by the Rust engine of pydantic (no `\\s`, `.`, or
lookaround: those differ between them).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ledger.errors import InvalidRequest, LedgerError
from ledger.i18n import N_

# The characters str.strip() removes (str.isspace()), as the inside of a character class.
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The most digits whole_number reads.
WHOLE_NUMBER_DIGITS = 9


def is_storable_text(value: str) -> bool:
    """Text PostgreSQL can store: valid UTF-8 (no lone surrogate) and no NUL character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def storable_text(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, with what PostgreSQL cannot store replaced by U+FFFD."""
    value = value[:limit].replace("\x00", "\ufffd")
    return value.encode("utf-8", "replace").decode("utf-8") if not is_storable_text(value) else value


def is_storable_json(value: object) -> bool:
    """Can JSONB store `value` as it is (no NaN or Infinity, no NUL, no lone surrogate, not absurdly deep)?"""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return is_storable_text(text) and "\\u0000" not in text


def text(
    raw: object,
    field: str,
    *,
    max_length: int,
    min_length: int = 1,
    strip: bool = True,
    printable: bool = False,
    message: str | None = None,
) -> str:
    """A text field of `min_length` to `max_length` characters (after stripping surrounding spaces).

    `message` replaces the default explanation of a refusal (e.g. the rules of a password).
    """
    value = raw.strip() if strip and isinstance(raw, str) else raw
    if not isinstance(value, str):
        problem = N_("Enter text.")
    elif not min_length <= len(value) <= max_length:
        problem = N_("Enter %(min)d to %(max)d characters.")
    elif not is_storable_text(value) or (printable and not value.isprintable()):
        problem = N_("Remove the control or invalid characters.")
    else:
        return value
    raise InvalidRequest(message or problem, field=field, min=min_length, max=max_length)


def optional_text(raw: object, field: str, *, max_length: int, printable: bool = False) -> str | None:
    """Like `text`, but missing or blank is None."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    return text(raw, field, max_length=max_length, printable=printable)


def uuid_of(raw: object, field: str, *, error: LedgerError | None = None) -> uuid.UUID:
    """A UUID given as text; InvalidRequest (or `error`, e.g. NotFound for a path) otherwise."""
    try:
        if isinstance(raw, uuid.UUID):
            return raw
        if isinstance(raw, str) and len(raw) <= 64:
            return uuid.UUID(raw)
    except ValueError:
        pass
    raise error or InvalidRequest(N_("Give an id such as 3f2b0c4e-8d1a-4e5b-9c7d-2a6f1e0b5c9d."), field=field)


def whole_number(raw: object, field: str, *, minimum: int, maximum: int, message: str | None = None) -> int:
    """A whole number written in ASCII digits (a JSON integer is accepted too, and so is a JSON number
    without a fraction: 60.0 is the number 60), within [minimum, maximum]."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif (
        isinstance(raw, str)
        and 1 <= len(raw.strip()) <= WHOLE_NUMBER_DIGITS
        and raw.strip().isascii()
        and raw.strip().isdigit()
    ):
        value = int(raw.strip())
    if value is None or not minimum <= value <= maximum:
        raise InvalidRequest(
            message or N_("Enter a whole number from %(min)d to %(max)d."), field=field, min=minimum, max=maximum
        )
    return value


def text_pattern(*, max_length: int, strip: bool = True) -> str:
    """What `text` takes (1 to `max_length` characters, after stripping surrounding spaces when
    `strip`; no NUL), as a regular expression."""
    if not strip:
        return f"^[^\\x00]{{1,{max_length}}}$"
    edge = f"[^{WHITESPACE}\\x00]"
    return f"^[{WHITESPACE}]*{edge}(?:[^\\x00]{{0,{max_length - 2}}}{edge})?[{WHITESPACE}]*$"


def whole_number_pattern(*, minimum: int, maximum: int) -> str:
    """What `whole_number` takes as text (ASCII digits, leading zeros and surrounding spaces
    allowed, from `minimum` to `maximum`), as a regular expression."""
    digits = integer_pattern(minimum, maximum, max_digits=WHOLE_NUMBER_DIGITS)
    return f"^[{WHITESPACE}]*(?:{digits})[{WHITESPACE}]*$"


def integer_pattern(low: int, high: int, *, max_digits: int) -> str:
    """A regular expression (unanchored) of the strings of 1 to `max_digits` ASCII digits, leading
    zeros allowed, whose value is from `low` to `high` (0 <= low <= high)."""
    branches = [f"0{{1,{max_digits}}}"] if low == 0 else []
    for length in range(1, max_digits + 1):
        first, last = max(low, 10 ** (length - 1)), min(high, 10**length - 1)
        if first > last:
            continue
        zeros = max_digits - length  # each length has its own room for leading zeros
        lead = f"0{{0,{zeros}}}" if zeros else ""
        branches += [lead + render_digits(span) for span in digit_spans(str(first), str(last))]
    return "|".join(branches)


Digit = tuple[int, int]  # a class of digits, from..to


def digit_spans(first: str, last: str) -> list[list[Digit]]:
    """The digit strings of `first`'s length from `first` to `last` (both that long, first <= last),
    as a few sequences of digit classes: "120".."345" is 1[2-9][0-9], 2[0-9][0-9], 3[0-3][0-9],
    34[0-5]."""
    if not first:
        return [[]]
    if first[0] == last[0]:
        return [[(int(first[0]),) * 2, *rest] for rest in digit_spans(first[1:], last[1:])]
    rest = len(first) - 1
    low, high = int(first[0]), int(last[0])
    spans: list[list[Digit]] = []
    if first[1:] != "0" * rest:  # starts inside its first digit's block
        spans += [[(low, low), *tail] for tail in digit_spans(first[1:], "9" * rest)]
        low += 1
    ends: list[list[Digit]] = []
    if last[1:] != "9" * rest:  # ends inside its first digit's block
        ends = [[(high, high), *tail] for tail in digit_spans("0" * rest, last[1:])]
        high -= 1
    if low <= high:
        spans.append([(low, high), *[(0, 9)] * rest])
    return spans + ends


def render_digits(span: list[Digit]) -> str:
    """A sequence of digit classes as a regular expression, repeated classes counted: 1[0-9]{2}."""
    out, i = [], 0
    while i < len(span):
        low, high = span[i]
        if low == high:
            out.append(str(low))
            i += 1
            continue
        j = i
        while j < len(span) and span[j] == span[i]:
            j += 1
        out.append(f"[{low}-{high}]" + (f"{{{j - i}}}" if j - i > 1 else ""))
        i = j
    return "".join(out)


def day(raw: object, field: str, *, first: date, last: date, error: type[LedgerError] = InvalidRequest) -> date:
    """A date written YYYY-MM-DD within [first, last]."""
    try:
        if not isinstance(raw, str) or len(raw) != 10 or not raw.isascii():
            raise ValueError
        value = date.fromisoformat(raw)
    except ValueError:
        raise error(N_("Enter a date as YYYY-MM-DD."), field=field) from None
    if not first <= value <= last:
        raise error(N_("Enter a date from %(first)s to %(last)s."), field=field, first=str(first), last=str(last))
    return value


def json_object(raw: object, field: str, *, max_bytes: int) -> dict[str, Any]:
    """An optional JSON object that JSONB can store (no NaN, NUL or lone surrogate), `max_bytes` at most."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequest(N_("Give a JSON object."), field=field)
    if not is_storable_json(raw):
        raise InvalidRequest(
            N_("Give plain JSON: no NaN or Infinity, no NUL characters, no invalid Unicode."), field=field
        )
    if len(json.dumps(raw, ensure_ascii=False).encode("utf-8")) > max_bytes:
        raise InvalidRequest(N_("At most %(kb)d KB of JSON."), field=field, kb=max_bytes // 1024)
    return raw


def future_instant(raw: object, field: str, *, now: datetime, tz: ZoneInfo) -> datetime | None:
    """An optional instant after `now`: ISO 8601 (2027-01-31T23:59:59+08:00; without an offset, in
    `tz`, as an HTML datetime-local field sends it). None when empty."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        if not isinstance(raw, str) or len(raw) > 40 or not raw.isascii():
            raise ValueError
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidRequest(N_("Enter a time such as 2027-01-31T23:59:59+08:00."), field=field) from None
    value = value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if value <= now:
        raise InvalidRequest(N_("The expiry must be in the future."), field=field)
    return value.astimezone(UTC)
