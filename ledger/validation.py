"""The input contract: raw values (form fields, JSON members, notify fields, command arguments) are
checked completely before a service acts on them.

Each check takes the raw value as it came (any type), returns a clean Python value, or raises
InvalidRequest naming the field. Text must be storable by PostgreSQL: no NUL, no lone surrogate.
Money is parsed by ledger.money (exact strings, SPEC 19).
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

from ledger.errors import InvalidRequest, LedgerError
from ledger.i18n import N_


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
    """A whole number written in ASCII digits (a JSON integer is accepted too), within [minimum, maximum]."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and 1 <= len(raw.strip()) <= 9 and raw.strip().isascii() and raw.strip().isdigit():
        value = int(raw.strip())
    if value is None or not minimum <= value <= maximum:
        raise InvalidRequest(
            message or N_("Enter a whole number from %(min)d to %(max)d."), field=field, min=minimum, max=maximum
        )
    return value


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
