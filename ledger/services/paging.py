"""Pages of a person's history, newest first, by row id: a page and where the next (older) one starts.

The next page is "ids below the last one shown" (keyset paging): a row added meanwhile never shifts a
page, and page 1,000 costs what page 1 does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

from ledger.errors import InvalidRequest
from ledger.i18n import N_

T = TypeVar("T")
PAGE_SIZE = 20
MAX_ID = 2**63 - 1  # a BIGINT


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    older: int | None  # `before` for the next, older page; None on the last page


def parse_before(raw: object) -> int | None:
    """The `before` of a page link: None (or empty) for the newest page, else a row id.
    InvalidRequest on anything else."""
    if raw is None or raw == "":
        return None
    text = raw.strip() if isinstance(raw, str) else ""
    if text.isascii() and text.isdigit() and len(text) <= 19 and 1 <= int(text) <= MAX_ID:
        return int(text)
    raise InvalidRequest(N_("This page link is not valid: start again from the newest."), field="before")


def newest_first(session: Session, stmt: Select[Any], id_column: Any, before: object, size: int = PAGE_SIZE) -> Page:
    """The rows of `stmt` with an id below `before` (all when None), newest first, `size` of them."""
    start = parse_before(before)
    if start is not None:
        stmt = stmt.where(id_column < start)
    rows = list(session.scalars(stmt.order_by(id_column.desc()).limit(size + 1)))
    return Page(rows[:size], rows[size - 1].id if len(rows) > size else None)
