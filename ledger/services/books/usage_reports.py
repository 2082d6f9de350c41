"""Usage reports: totals, groups by day or model, keyset-paginated items, and CSV export (SPEC 6, 8).

Days are the person's days: a range of dates in their time zone is turned into a half-open range
of instants [from 00:00, to+1 00:00) before it reaches the database, and days are grouped with
`created_at AT TIME ZONE tz`. Every query starts with `user_id = :me`, served by the covering index
usage_logs (user_id, created_at, id) INCLUDE (amount, model).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, String, case, cast, func, literal, select, tuple_
from sqlalchemy.orm import Session

from ledger import validation
from ledger.errors import InvalidRange, InvalidRequest
from ledger.i18n import N_
from ledger.models import UsageHourly, UsageLog

MAX_DAYS = 366
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9999, 12, 30)
DEFAULT_DAYS = 30
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
GROUPINGS = ("day", "model")
FORMATS = ("json", "csv")
CSV_COLUMNS = ("created_at", "usage_id", "model", "amount", "balance_after", "request_id", "params")
CSV_BATCH = 5000
# A cell starting with one of these is prefixed with ' so that a spreadsheet does not run it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ReportQuery:
    user_id: uuid.UUID
    tz: ZoneInfo
    start: date
    end: date  # inclusive
    group_by: str = "day"
    model: str | None = None

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.tz)

    @property
    def until(self) -> datetime:  # exclusive
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=self.tz)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


@dataclass(frozen=True)
class Group:
    key: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class Item:
    id: uuid.UUID
    created_at: datetime
    model: str
    amount: Decimal
    balance_after: Decimal
    request_id: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Report:
    query: ReportQuery
    count: int
    amount: Decimal
    groups: list[Group]
    items: list[Item]
    next_cursor: str | None

    def daily(self) -> list[tuple[date, Decimal]]:
        """Spending per day of the range, days without usage included (a report grouped by day)."""
        totals = {g.key: g.amount for g in self.groups}
        return [(d, totals.get(d.isoformat(), Decimal(0))) for d in self.query.days]


def parse_query(
    *,
    user_id: uuid.UUID,
    tz: ZoneInfo,
    today: date,
    raw_from: object = None,
    raw_to: object = None,
    group_by: object = None,
    model: object = None,
) -> ReportQuery:
    """Validate the filters of a report. Raises InvalidRange (bad, reversed or over 366 days) or
    InvalidRequest (unknown group_by, model too long). Without dates: the last 30 days."""
    end = parse_date(raw_to, "to") if raw_to else today
    start = parse_date(raw_from, "from") if raw_from else max(end - timedelta(days=DEFAULT_DAYS - 1), FIRST_DAY)
    if start > end:
        raise InvalidRange(N_("The start date must not be after the end date."), field="from")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidRange(N_("A range covers at most %(days)d days."), field="from", days=MAX_DAYS)
    group_by = group_by or "day"
    if group_by not in GROUPINGS:
        raise InvalidRequest(N_("Choose one of: %(choices)s."), field="group_by", choices=", ".join(GROUPINGS))
    model = validation.optional_text(model, "model", max_length=100)
    return ReportQuery(user_id=user_id, tz=tz, start=start, end=end, group_by=str(group_by), model=model)


def parse_date(raw: object, name: str) -> date:
    """A report's day `from` or `to`: YYYY-MM-DD from FIRST_DAY to LAST_DAY, else InvalidRange."""
    # Room for the day after and the time-zone shift at both ends.
    return validation.day(raw, name, first=FIRST_DAY, last=LAST_DAY, error=InvalidRange)


def parse_format(raw: object) -> str:
    """The report's format: json (the default) or csv."""
    if raw is None or raw == "":
        return "json"
    if raw not in FORMATS:
        raise InvalidRequest(N_("Choose one of: %(choices)s."), field="format", choices=", ".join(FORMATS))
    return str(raw)


def parse_limit(raw: object) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    return validation.whole_number(raw, "limit", minimum=1, maximum=MAX_LIMIT)


def encode_cursor(created_at: datetime, usage_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{usage_id}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[datetime, uuid.UUID]:
    try:
        if not isinstance(raw, str) or not raw.isascii() or len(raw) > 200:
            raise ValueError
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        stamp, _, usage_id = text.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError
        return created_at, uuid.UUID(usage_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            N_("This cursor is not valid: pass next_cursor as it was given."), field="cursor"
        ) from None


def _in_range(q: ReportQuery) -> list[Any]:
    conditions = [UsageLog.user_id == q.user_id, UsageLog.created_at >= q.since, UsageLog.created_at < q.until]
    if q.model:
        conditions.append(UsageLog.model == q.model)
    return conditions


def _local_day(q: ReportQuery) -> Any:
    return cast(func.timezone(q.tz.key, UsageLog.created_at), Date)


def hour_aligned(q: ReportQuery) -> bool:
    """Do the range's local midnights fall on whole UTC hours? Then hourly sums add up to its days.

    True for most zones (Asia/Shanghai, Europe/*, America/* ...); not for Asia/Kolkata (+05:30),
    Asia/Kathmandu (+05:45) and a few others, whose reports read the usage logs themselves.
    """
    midnights = [*q.days, q.end + timedelta(days=1)]
    return all(
        (datetime.combine(d, time.min, tzinfo=q.tz).utcoffset() or timedelta(0)) % timedelta(hours=1) == timedelta(0)
        for d in midnights
    )


def _grouped(session: Session, q: ReportQuery, group_by: str, *, use_sums: bool | None = None) -> list[tuple]:
    """(key, count, amount) per day or model of the range, from the hourly sums when they add up."""
    if use_sums if use_sums is not None else hour_aligned(q):
        conditions = [UsageHourly.user_id == q.user_id, UsageHourly.hour >= q.since, UsageHourly.hour < q.until]
        if q.model:
            conditions.append(UsageHourly.model == q.model)
        key = cast(func.timezone(q.tz.key, UsageHourly.hour), Date) if group_by == "day" else UsageHourly.model
        count, amount = func.sum(UsageHourly.count), func.sum(UsageHourly.amount)
    else:
        conditions = _in_range(q)
        key = _local_day(q) if group_by == "day" else UsageLog.model
        count, amount = func.count(), func.sum(UsageLog.amount)
    return session.execute(select(key, count, amount).where(*conditions).group_by(key).order_by(key)).all()


def usage_report(
    session: Session,
    q: ReportQuery,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    use_sums: bool | None = None,
) -> Report:
    """Totals, groups and one page of items (newest first) of a person's usage in a range.

    Totals and groups come from the hourly sums when the person's days are whole UTC hours
    (`use_sums` forces either way, for tests), else from the usage logs; items from the logs.
    """
    where = _in_range(q)
    rows = _grouped(session, q, q.group_by, use_sums=use_sums)
    groups = [Group(str(k), int(n), total) for k, n, total in rows]
    if q.group_by == "model":
        groups.sort(key=lambda g: (-g.amount, g.key))
    if limit == 0:  # totals and groups only
        return Report(q, sum(g.count for g in groups), sum((g.amount for g in groups), Decimal(0)), groups, [], None)
    page = select(UsageLog).where(*where)
    if cursor:
        after_created, after_id = decode_cursor(cursor)
        page = page.where(tuple_(UsageLog.created_at, UsageLog.id) < tuple_(literal(after_created), literal(after_id)))
    logs = session.scalars(page.order_by(UsageLog.created_at.desc(), UsageLog.id.desc()).limit(limit + 1)).all()
    more = len(logs) > limit
    logs = logs[:limit]
    items = [Item(u.id, u.created_at, u.model, u.amount, u.balance_after, u.request_id, u.params) for u in logs]
    return Report(
        query=q,
        count=sum(g.count for g in groups),
        amount=sum((g.amount for g in groups), Decimal(0)),
        groups=groups,
        items=items,
        next_cursor=encode_cursor(logs[-1].created_at, logs[-1].id) if more else None,
    )


def daily_series(session: Session, q: ReportQuery) -> list[tuple[date, Decimal]]:
    """Spending per day of the range, days without usage included (for charts)."""
    totals = {day: amount for day, _count, amount in _grouped(session, q, "day")}
    return [(d, totals.get(d, Decimal(0))) for d in q.days]


def csv_filename(q: ReportQuery) -> str:
    return f"usage_{q.start:%Y%m%d}_{q.end:%Y%m%d}.csv"


def _csv_text(column: Any) -> Any:
    """SQL for a quoted CSV text cell, prefixed with ' when it starts like a spreadsheet formula."""
    safe = case((func.left(column, 1).in_(FORMULA_STARTS), literal("'") + column), else_=column)
    return literal('"') + func.replace(safe, '"', '""') + literal('"')


def export_csv(session: Session, q: ReportQuery) -> Iterator[bytes]:
    """The CSV of SPEC 8, oldest first, as UTF-8 chunks (BOM first) streamed from a server-side cursor.

    PostgreSQL writes each row as one CSV line (local time, decimals as the API writes them, JSON,
    quoted text), so that Python only joins lines; rows are fetched CSV_BATCH at a time: memory
    stays flat whatever the range. The query runs before this returns, so that an error is still
    an error response and not a truncated download.
    """
    line = func.concat_ws(
        ",",
        cast(func.date_trunc("second", func.timezone(q.tz.key, UsageLog.created_at)), String),
        cast(UsageLog.id, String),
        _csv_text(UsageLog.model),
        _csv_money(UsageLog.amount),
        _csv_money(UsageLog.balance_after),
        _csv_text(UsageLog.request_id),
        _csv_text(cast(UsageLog.params, String)),
    )
    stmt = (
        select(line)
        .where(*_in_range(q))
        .order_by(UsageLog.created_at, UsageLog.id)
        .execution_options(stream_results=True, yield_per=CSV_BATCH)
    )
    result = session.execute(stmt).scalars()
    return _stream_csv(result)


def _stream_csv(result: Any) -> Iterator[bytes]:
    try:
        yield ("\ufeff" + ",".join(CSV_COLUMNS) + "\r\n").encode("utf-8")
        for lines in result.partitions():
            yield ("\r\n".join(lines) + "\r\n").encode("utf-8")
    finally:
        result.close()


def _csv_money(column: Any) -> Any:
    """SQL for an amount written as the API writes it: exact, at least two decimals ("1.10", "0.0125")."""
    trimmed = func.trim_scale(column)
    return cast(case((func.scale(trimmed) < 2, func.round(column, 2)), else_=trimmed), String)
