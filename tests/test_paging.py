"""Keyset paging (services.paging): the `before` of a page link, and pages newest first by row id."""

import pytest
from sqlalchemy import select

from ledger.errors import InvalidRequest
from ledger.models import Actor, AuditLog
from ledger.services.paging import MAX_ID, newest_first, parse_before
from tests.factories import UserFactory


@pytest.mark.parametrize(("raw", "before"), [(None, None), ("", None), ("1", 1), (" 42 ", 42), (str(MAX_ID), MAX_ID)])
def test_before_is_none_for_the_newest_page_else_a_row_id(raw, before):
    assert parse_before(raw) == before


@pytest.mark.parametrize("raw", ["0", "-1", str(MAX_ID + 1), "1" * 20, "1.5", "abc", "١٢", 7, [], "  "])
def test_any_other_before_is_refused_on_its_field(raw):
    with pytest.raises(InvalidRequest) as refused:
        parse_before(raw)
    assert refused.value.field == "before"


def test_pages_are_newest_first_and_each_starts_below_the_last_row_of_the_one_before(session):
    user = UserFactory()
    rows = [AuditLog(user_id=user.id, actor=Actor.SYSTEM, action=f"test.{n}") for n in range(5)]
    session.add_all(rows)
    session.flush()
    stmt = select(AuditLog).where(AuditLog.user_id == user.id, AuditLog.action.like("test.%"))
    ids = sorted((row.id for row in rows), reverse=True)

    first = newest_first(session, stmt, AuditLog.id, None, size=2)
    assert ([row.id for row in first.items], first.older) == (ids[:2], ids[1])
    second = newest_first(session, stmt, AuditLog.id, str(first.older), size=2)
    assert ([row.id for row in second.items], second.older) == (ids[2:4], ids[3])
    last = newest_first(session, stmt, AuditLog.id, str(second.older), size=2)
    assert ([row.id for row in last.items], last.older) == (ids[4:], None)


def test_a_page_of_exactly_size_rows_is_the_last(session):
    user = UserFactory()
    session.add_all([AuditLog(user_id=user.id, actor=Actor.SYSTEM, action="test.row") for _ in range(2)])
    session.flush()
    stmt = select(AuditLog).where(AuditLog.user_id == user.id, AuditLog.action == "test.row")
    page = newest_first(session, stmt, AuditLog.id, None, size=2)
    assert (len(page.items), page.older) == (2, None)
