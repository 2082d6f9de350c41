"""The reports service: CSV in constant-memory batches and the hourly sums that speed reports up."""

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tests.factories import UsageFactory
from tests.helpers import SHANGHAI, at


def test_csv_streams_in_constant_memory_batches(session, me):
    from zoneinfo import ZoneInfo

    from ledger.services.books.usage_reports import CSV_BATCH, ReportQuery, export_csv

    for n in range(CSV_BATCH + 10):
        UsageFactory(user=me, request_id=f"r{n}", created_at=at("2026-03-05 10:00:00") + timedelta(seconds=n))
    q = ReportQuery(
        user_id=me.id,
        tz=ZoneInfo("Asia/Shanghai"),
        start=at("2026-03-05 00:00:00").date(),
        end=at("2026-03-06 00:00:00").date(),
    )
    chunks = list(export_csv(session, q))
    assert len(chunks) == 3  # header, one full batch, the rest
    assert sum(c.count(b"\r\n") for c in chunks) == CSV_BATCH + 11
    assert uuid.UUID(chunks[2].decode().split(",")[1])


def test_hourly_sums_give_the_same_report_as_the_logs(session, me):
    import random
    from zoneinfo import ZoneInfo

    from ledger.services.books.usage_reports import hour_aligned, parse_query, usage_report

    rng = random.Random(7)
    start = datetime(2026, 2, 20, tzinfo=UTC)
    for _ in range(300):
        UsageFactory(
            user=me,
            model=rng.choice(["a", "b", "c"]),
            amount=Decimal(rng.randint(1, 99_999)) / 10_000,
            created_at=start + timedelta(minutes=rng.randint(0, 60 * 24 * 40)),
        )
    UsageFactory(created_at=start + timedelta(days=3))  # someone else
    for zone in ["Asia/Shanghai", "America/Los_Angeles", "Europe/London", "UTC"]:  # DST on 2026-03-08 / 03-29
        for group_by in ["day", "model"]:
            q = parse_query(
                user_id=me.id,
                tz=ZoneInfo(zone),
                today=date(2026, 3, 31),
                raw_from="2026-02-25",
                raw_to="2026-03-31",
                group_by=group_by,
                model=None,
            )
            assert hour_aligned(q)
            from_sums = usage_report(session, q, limit=0, use_sums=True)
            from_logs = usage_report(session, q, limit=0, use_sums=False)
            assert from_sums.groups == from_logs.groups and from_sums.count == from_logs.count, (zone, group_by)
            assert from_sums.amount == from_logs.amount


def test_half_hour_zones_read_the_logs_and_stay_exact(session, me):
    from zoneinfo import ZoneInfo

    from ledger.services.books.usage_reports import hour_aligned, parse_query, usage_report

    # 2026-03-01 18:45 UTC is 00:15 on the 2nd in Kolkata (+05:30): an hourly sum would put it on the 1st.
    UsageFactory(user=me, amount=Decimal("1.00"), created_at=datetime(2026, 3, 1, 18, 45, tzinfo=UTC))
    q = parse_query(
        user_id=me.id, tz=ZoneInfo("Asia/Kolkata"), today=date(2026, 3, 31), raw_from="2026-03-01", raw_to="2026-03-02"
    )
    assert not hour_aligned(q)
    assert [(g.key, g.count) for g in usage_report(session, q, limit=0).groups] == [("2026-03-02", 1)]


def test_hourly_sums_follow_updates_and_deletes_and_verify_checks_them(session, me):
    from sqlalchemy import delete, select, update

    from ledger.models import UsageHourly, UsageLog
    from ledger.services.books.invariants import find_breaches

    kept = UsageFactory(user=me, amount=Decimal("2.00"), created_at=at("2026-03-01 10:05:00"))
    moved = UsageFactory(user=me, amount=Decimal("3.00"), created_at=at("2026-03-01 10:30:00"))
    gone = UsageFactory(user=me, amount=Decimal("4.00"), created_at=at("2026-03-01 11:00:00"))
    session.execute(update(UsageLog).where(UsageLog.id == moved.id).values(created_at=at("2026-03-01 12:00:00")))
    session.execute(delete(UsageLog).where(UsageLog.id == gone.id))
    sums = session.execute(
        select(UsageHourly.hour, UsageHourly.count, UsageHourly.amount)
        .where(UsageHourly.user_id == me.id)
        .order_by(UsageHourly.hour)
    ).all()
    assert [(h.astimezone(UTC).hour, n, a) for h, n, a in sums] == [(2, 1, Decimal("2.00")), (4, 1, Decimal("3.00"))]
    derived = [b for b in find_breaches(session) if b.invariant.startswith("derived")]
    assert derived == []
    session.execute(update(UsageHourly).where(UsageHourly.user_id == me.id).values(amount=Decimal("9.99")))
    assert len([b for b in find_breaches(session) if b.invariant.startswith("derived")]) == 2
    assert kept


def test_hourly_sums_follow_statements_of_many_rows(session, me):
    """The sums are kept once a statement (migration 0016): an INSERT, UPDATE or DELETE of many rows,
    some of one (person, hour, model) and some of others, leaves the same sums as adding up the logs."""
    from sqlalchemy import delete, func, insert, select, update

    from ledger.models import UsageHourly, UsageLog

    def sums_of(table_sums: bool) -> list[tuple[object, ...]]:
        if table_sums:
            query = select(UsageHourly.hour, UsageHourly.model, UsageHourly.count, UsageHourly.amount)
            return sorted(session.execute(query.where(UsageHourly.user_id == me.id)).all())
        hour = func.date_trunc("hour", UsageLog.created_at, "UTC")
        query = select(hour, UsageLog.model, func.count(), func.sum(UsageLog.amount)).where(UsageLog.user_id == me.id)
        return sorted(session.execute(query.group_by(hour, UsageLog.model)).all())

    rows = [
        {"user_id": me.id, "amount": Decimal(f"{n}.25"), "model": model, "request_id": f"many-{n}",
         "balance_after": Decimal(0), "created_at": at(f"2026-03-01 {hour}:{n:02d}:00")}
        for n, (hour, model) in enumerate([(10, "a"), (10, "a"), (10, "b"), (11, "a"), (11, "a"), (12, "b")])
    ]  # fmt: skip
    session.execute(insert(UsageLog), rows)  # executemany
    session.execute(insert(UsageLog).values([{**r, "request_id": r["request_id"] + "-x"} for r in rows]))  # one INSERT
    assert [((h + SHANGHAI).hour, m, n) for h, m, n, _ in sums_of(True)] == [
        (10, "a", 4),
        (10, "b", 2),
        (11, "a", 4),
        (12, "b", 2),
    ]
    assert sums_of(True) == sums_of(False)
    # one UPDATE: all of 12:00/b moves to 10:00/a, half of 11:00/a to a new hour
    session.execute(
        update(UsageLog)
        .where(UsageLog.request_id.in_(["many-5", "many-5-x"]))
        .values(created_at=at("2026-03-01 10:59:00"), model="a")
    )
    session.execute(
        update(UsageLog)
        .where(UsageLog.request_id.in_(["many-3", "many-4-x"]))
        .values(created_at=at("2026-03-01 13:00:00"))
    )
    assert sums_of(True) == sums_of(False)
    assert [((h + SHANGHAI).hour, m, n) for h, m, n, _ in sums_of(True)] == [
        (10, "a", 6),
        (10, "b", 2),
        (11, "a", 2),
        (13, "a", 2),
    ]
    # one DELETE: a whole group and part of another
    session.execute(delete(UsageLog).where(UsageLog.request_id.in_(["many-2", "many-2-x", "many-0", "many-3"])))
    assert sums_of(True) == sums_of(False)
    assert [((h + SHANGHAI).hour, m, n) for h, m, n, _ in sums_of(True)] == [(10, "a", 5), (11, "a", 2), (13, "a", 1)]
