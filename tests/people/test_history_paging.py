"""Paging of /security's audit events and /account's balance history: 20 a page, newest first, an
"Older" link while more remain (keyset: ?before=<id of the last row shown>), "Newest" back."""

import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.models import Actor, AuditLog, CreditLot, LedgerEntry
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from ledger.services.paging import PAGE_SIZE
from tests.factories import UserFactory


def rows_of(page: str, testid: str) -> list[str]:
    """The body rows of the table marked `testid`."""
    start = page.index(f'data-testid="{testid}"')
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def older_link(page: str) -> str | None:
    found = re.search(r'href="([^"]*)"[^>]*data-testid="older"', page)
    return found and found.group(1).replace("&amp;", "&")


def events_for(session, user, count: int) -> list[int]:
    """`count` audit events of the person, 1 to count in order of their ids; their ids."""
    rows = [
        AuditLog(user_id=user.id, actor=Actor.USER, action="profile.updated", details={"n": n})
        for n in range(1, count + 1)
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def signed_in_with_events(client, auth, session, count: int):
    """A signed-in person with exactly `count` audit events (the sign-in's own included)."""
    user = UserFactory()
    auth.login(user)
    have = len(session.scalars(select(AuditLog.id).where(AuditLog.user_id == user.id)).all())
    return user, events_for(session, user, count - have)


def test_page_size_is_twenty():
    assert PAGE_SIZE == 20


@pytest.mark.parametrize("count", [1, 20])
def test_security_up_to_a_page_of_events_has_no_older_link(client, auth, session, count):
    signed_in_with_events(client, auth, session, count)
    page = client.get("/security").get_data(as_text=True)
    assert len(rows_of(page, "events")) == count
    assert older_link(page) is None
    assert 'data-testid="newest"' not in page


def test_security_a_page_and_one_more_event_go_on_a_second_page(client, auth, session):
    _user, ids = signed_in_with_events(client, auth, session, 21)
    first = client.get("/security").get_data(as_text=True)
    assert len(rows_of(first, "events")) == 20
    link = older_link(first)
    # The 20 added events are the newest: the sign-in, the oldest, is left for page 2.
    assert link == f"/security?before={ids[0]}#activity"
    second = client.get(link).get_data(as_text=True)
    rows = rows_of(second, "events")
    assert len(rows) == 1 and ("Signed in" in rows[0] or "登录" in rows[0])
    assert older_link(second) is None
    assert re.search(r'href="/security#activity"[^>]*data-testid="newest"', second)


def test_security_two_full_pages_end_without_an_older_link(client, auth, session):
    signed_in_with_events(client, auth, session, 40)
    first = client.get("/security").get_data(as_text=True)
    second = client.get(older_link(first)).get_data(as_text=True)
    assert len(rows_of(second, "events")) == 20
    assert older_link(second) is None
    empty = client.get("/security?before=1")  # below every id: an empty page, and the way back
    assert empty.status_code == 200 and 'data-testid="newest"' in empty.get_data(as_text=True)


@pytest.mark.parametrize("before", ["abc", "-1", "0", "1.5", "9" * 20, "１２"])
def test_security_a_malformed_page_link_is_422_in_both_languages(client, auth, session, before):
    signed_in_with_events(client, auth, session, 1)
    page = client.get(f"/security?before={before}")
    assert page.status_code == 422
    assert "此分页链接无效：请从最新的一页重新开始。" in page.get_data(as_text=True)
    client.set_cookie("lang", "en")
    page = client.get(f"/security?before={before}")
    assert "This page link is not valid: start again from the newest." in page.get_data(as_text=True)


def credited(session, user, count: int) -> list[int]:
    """`count` credits of ¥1.00 (the balance after the n-th is ¥n.00); their entry ids."""
    for _ in range(count):
        adjust_balance(session, user_id=user.id, amount=Decimal("1.00"), memo="paging", ctx=SYSTEM)
    return list(session.scalars(select(LedgerEntry.id).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id)))


def balances_in(rows: list[str]) -> list[str]:
    return [re.findall(r"¥([\d,.]+)</span>", row)[-1] for row in rows]


def test_account_exactly_a_page_of_balance_changes(client, auth, session):
    user = UserFactory()
    credited(session, user, 20)
    auth.login(user)
    page = client.get("/account").get_data(as_text=True)
    rows = rows_of(page, "ledger")
    assert balances_in(rows) == [f"{n}.00" for n in range(20, 0, -1)]
    assert older_link(page) is None


def test_account_a_page_and_one_more_balance_change(client, auth, session):
    user = UserFactory()
    ids = credited(session, user, 21)
    auth.login(user)
    client.set_cookie("lang", "en")
    first = client.get("/account").get_data(as_text=True)
    assert balances_in(rows_of(first, "ledger")) == [f"{n}.00" for n in range(21, 1, -1)]
    link = older_link(first)
    assert link == f"/account?before={ids[1]}#balance-history"
    assert re.search(r'data-testid="older">Older →<', first)
    second = client.get(link).get_data(as_text=True)
    assert balances_in(rows_of(second, "ledger")) == ["1.00"]
    assert older_link(second) is None
    assert re.search(r'href="/account#balance-history"[^>]*data-testid="newest">← Newest<', second)


def test_account_paging_in_chinese_and_only_own_entries(client, auth, session):
    other = UserFactory()
    credited(session, other, 5)
    user = UserFactory()
    ids = credited(session, user, 22)
    auth.login(user)
    first = client.get("/account").get_data(as_text=True)
    assert re.search(r'data-testid="older">更早 →<', first)
    second = client.get(older_link(first)).get_data(as_text=True)
    assert balances_in(rows_of(second, "ledger")) == ["2.00", "1.00"]
    assert re.search(r'data-testid="newest">← 最新<', second)
    assert older_link(first) == f"/account?before={ids[2]}#balance-history"


# --- /account's credit lots: paged on their own (?lots_before=), each history keeping the other's page


def lot_ids(session, user) -> list[int]:
    return list(session.scalars(select(CreditLot.id).where(CreditLot.user_id == user.id).order_by(CreditLot.id)))


def lots_in(page: str) -> list[int]:
    """The ids of the lots the table shows, in its order."""
    return [int(i) for i in re.findall(r'<tr data-lot="(\d+)"', page)]


def link(page: str, testid: str) -> str | None:
    found = re.search(rf'href="([^"]*)"[^>]*data-testid="{testid}"', page)
    return found and found.group(1).replace("&amp;", "&")


def test_account_exactly_a_page_of_lots_has_no_older_link(client, auth, session):
    user = UserFactory()
    credited(session, user, 20)
    auth.login(user)
    page = client.get("/account").get_data(as_text=True)
    assert len(lots_in(page)) == 20
    assert link(page, "lots-older") is None and link(page, "lots-newest") is None


def test_account_lots_a_page_and_one_more_go_on_a_second_page(client, auth, session):
    other = UserFactory()
    credited(session, other, 3)
    user = UserFactory()
    credited(session, user, 21)
    lots = lot_ids(session, user)
    auth.login(user)
    client.set_cookie("lang", "en")
    first = client.get("/account").get_data(as_text=True)
    assert lots_in(first) == lots[:0:-1]  # newest first, 20 of them
    older = link(first, "lots-older")
    assert older == f"/account?lots_before={lots[1]}#lots"
    assert re.search(r'data-testid="lots-older">Older →<', first)
    second = client.get(older).get_data(as_text=True)
    assert lots_in(second) == [lots[0]]  # the oldest, and no one else's
    assert link(second, "lots-older") is None
    assert link(second, "lots-newest") == "/account#lots"
    # The balance changes stay on their newest page meanwhile, and their own links keep the lots' page.
    assert balances_in(rows_of(second, "ledger"))[0] == "21.00"
    assert link(second, "older") == f"{older.split('#')[0]}&before={older_ledger(session, user)}#balance-history"


def older_ledger(session, user) -> int:
    """`before` of the second page of the person's balance changes: the 20th newest entry's id."""
    ids = list(session.scalars(select(LedgerEntry.id).where(LedgerEntry.user_id == user.id).order_by(LedgerEntry.id)))
    return ids[-20]


def test_paging_the_balance_changes_keeps_the_lots_page_and_back(client, auth, session):
    user = UserFactory()
    entries = credited(session, user, 22)
    lots = lot_ids(session, user)
    auth.login(user)
    page = client.get(f"/account?before={entries[2]}&lots_before={lots[2]}").get_data(as_text=True)
    assert balances_in(rows_of(page, "ledger")) == ["2.00", "1.00"]
    assert lots_in(page) == [lots[1], lots[0]]
    assert link(page, "newest") == f"/account?lots_before={lots[2]}#balance-history"
    assert link(page, "lots-newest") == f"/account?before={entries[2]}#lots"


@pytest.mark.parametrize("before", ["abc", "0", "１２"])
def test_account_a_malformed_lots_page_link_is_422(client, auth, session, before):
    auth.login(UserFactory())
    page = client.get(f"/account?lots_before={before}")
    assert page.status_code == 422
    assert "此分页链接无效：请从最新的一页重新开始。" in page.get_data(as_text=True)
