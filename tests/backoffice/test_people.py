"""The back office's people (backoffice.people): adjusting a balance by hand, previewed and audited, never
past the available amount; disabling and enabling; finding people."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.errors import InsufficientBalance, InvalidRequest, NotFound
from ledger.models import AuditLog, LedgerEntry
from ledger.services.backoffice.people import adjust, preview_adjust, search_people, set_disabled
from ledger.services.books.invariants import find_breaches
from tests.factories import UserFactory
from tests.helpers import ADMIN, balance_of, count_rows


def test_a_preview_shows_the_balance_before_and_after_and_writes_nothing(session):
    user = UserFactory(balance="10.00")
    planned = preview_adjust(session, ADMIN, user.id, "2.50", debit=True)
    assert (planned.amount, planned.balance, planned.balance_after, planned.available) == (
        Decimal("-2.50"),
        Decimal("10.00"),
        Decimal("7.50"),
        Decimal("10.00"),
    )
    assert balance_of(session, user) == Decimal("10.00")


def test_an_adjustment_is_an_entry_of_its_own_audited_with_the_reason(session):
    user = UserFactory()
    done = adjust(session, ADMIN, str(user.id), "5.00", debit=False, reason="asked by phone")
    assert (done.balance, done.balance_after) == (Decimal("0.00"), Decimal("5.00"))
    assert balance_of(session, user) == Decimal("5.00")
    [entry] = session.scalars(select(LedgerEntry).where(LedgerEntry.user_id == user.id)).all()
    assert (entry.kind, entry.amount, entry.balance_after, entry.memo) == (
        "adjustment",
        Decimal("5.00"),
        Decimal("5.00"),
        "asked by phone",
    )
    [row] = session.scalars(select(AuditLog).where(AuditLog.user_id == user.id)).all()
    assert (row.action, row.actor, row.details["reason"], row.details["via"]) == (
        "balance.adjusted",
        "admin",
        "asked by phone",
        "test",
    )
    assert list(find_breaches(session)) == []


def test_a_debit_past_the_available_amount_is_refused_and_nothing_changes(session):
    user = UserFactory(balance="10.00")
    with pytest.raises(InsufficientBalance):
        adjust(session, ADMIN, user.id, "10.01", debit=True, reason="too much")
    assert balance_of(session, user) == Decimal("10.00")
    assert count_rows(session, LedgerEntry, user) == 1  # the factory's credit


@pytest.mark.parametrize("amount", ["0", "-1", "1.005", "abc", None])
def test_an_amount_that_is_not_a_positive_exact_one_is_refused(session, amount):
    with pytest.raises(InvalidRequest):
        preview_adjust(session, ADMIN, UserFactory().id, amount, debit=False)


@pytest.mark.parametrize("user_id", [uuid.uuid4(), "not-an-id", None])
def test_adjusting_an_unknown_person_is_not_found(session, user_id):
    with pytest.raises(NotFound):
        preview_adjust(session, ADMIN, user_id, "1.00", debit=False)


def test_a_person_is_disabled_once_and_enabled_again_each_audited(session):
    user = UserFactory()
    assert set_disabled(session, ADMIN, user.id, disabled=True, reason="fraud").disabled_at is not None
    with pytest.raises(InvalidRequest, match="Nothing to change"):
        set_disabled(session, ADMIN, user.id, disabled=True, reason="again")
    session.flush()  # set_disabled sets disabled_at on the object after writing it: flushed before the next
    assert set_disabled(session, ADMIN, user.id, disabled=False, reason="cleared").disabled_at is None
    actions = session.scalars(
        select(AuditLog.action).where(AuditLog.user_id == user.id, AuditLog.action.like("user.%")).order_by(AuditLog.id)
    )
    assert list(actions) == ["user.disabled", "user.enabled"]


def test_people_are_found_by_part_of_their_email_or_their_exact_id(session):
    tag = uuid.uuid4().hex[:10]
    found = UserFactory(email=f"found-{tag}@example.com")
    UserFactory(email=f"other-{uuid.uuid4().hex[:10]}@example.com")
    assert search_people(session, f"FOUND-{tag}") == ([found], 1)
    assert search_people(session, f" {found.id} ") == ([found], 1)
    assert search_people(session, "\x00") == ([], 0)
