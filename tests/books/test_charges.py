"""The single charge (books.charges): charge_usage lowers the balance once per request id, writes the
usage log, its ledger entry and an audit row; a shortfall writes only its audit row (SPEC 5)."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.errors import InsufficientBalance, InvalidRequest, RequestIdConflict, UserNotFound
from ledger.models import AuditLog, LedgerEntry, UsageLog
from ledger.services.books.charges import charge_usage
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL
from tests.factories import UserFactory
from tests.helpers import balance_of, charge, count_rows


def test_charge_lowers_balance_and_writes_usage_ledger_and_audit(session):
    user = UserFactory(balance="10.00")
    result = charge(session, user, amount="2.3456", params={"images": 2})

    assert result.replayed is False
    assert result.balance == Decimal("7.6544")
    assert balance_of(session, user) == Decimal("7.6544")
    usage = result.usage
    assert (usage.amount, usage.balance_after, usage.params) == (Decimal("2.3456"), Decimal("7.6544"), {"images": 2})
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.usage_log_id == usage.id)).one()
    assert (entry.kind, entry.amount, entry.balance_after) == ("usage", Decimal("-2.3456"), Decimal("7.6544"))
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "usage.charged")).one()
    assert audit.user_id == user.id and audit.actor == "internal"
    assert audit.details["amount"] == "2.3456" and audit.details["usage_id"] == str(usage.id)
    assert list(find_breaches(session)) == []


def test_charge_of_the_whole_balance_leaves_exactly_zero(session):
    user = UserFactory(balance="0.30")
    for i in range(3):
        charge(session, user, amount="0.10", request_id=f"r-{i}")
    assert balance_of(session, user) == Decimal("0.0000")
    with pytest.raises(InsufficientBalance):
        charge(session, user, amount="0.0001", request_id="r-last")


def test_replayed_request_id_charges_once(session):
    user = UserFactory(balance="5.00")
    first = charge(session, user, amount="1.25", request_id="same")
    again = charge(session, user, amount="1.25", request_id="same")

    assert again.replayed is True
    assert again.usage.id == first.usage.id
    assert again.balance == Decimal("3.7500")
    assert balance_of(session, user) == Decimal("3.7500")
    assert count_rows(session, UsageLog, user) == 1
    assert count_rows(session, LedgerEntry, user) == 2  # the factory's credit and one charge


@pytest.mark.parametrize(("amount", "model"), [("1.26", "image-studio-v2"), ("1.25", "chat-pro")])
def test_request_id_reused_for_another_charge_is_a_conflict(session, amount, model):
    user = UserFactory(balance="5.00")
    charge(session, user, amount="1.25", request_id="same")
    with pytest.raises(RequestIdConflict):
        charge(session, user, amount=amount, model=model, request_id="same")
    assert balance_of(session, user) == Decimal("3.7500")
    assert count_rows(session, UsageLog, user) == 1


def test_same_request_id_for_two_people_charges_both(session):
    alice, bob = UserFactory(balance="2.00"), UserFactory(balance="2.00")
    charge(session, alice, request_id="shared")
    charge(session, bob, request_id="shared")
    assert (balance_of(session, alice), balance_of(session, bob)) == (Decimal("1.0000"), Decimal("1.0000"))


def test_insufficient_balance_writes_only_an_audit_row(session):
    user = UserFactory(balance="1.00")
    with pytest.raises(InsufficientBalance) as raised:
        charge(session, user, amount="1.0001")
    assert (raised.value.balance, raised.value.available) == (Decimal("1.0000"), Decimal("1.0000"))
    assert balance_of(session, user) == Decimal("1.0000")
    assert count_rows(session, UsageLog, user) == 0
    assert count_rows(session, LedgerEntry, user) == 1
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "usage.insufficient_balance")).one()
    assert audit.details == {
        "amount": "1.0001",
        "balance": "1.00",
        "available": "1.00",
        "model": "image-studio-v2",
        "request_id": "r-1",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-1.00"}, "amount"),
        ({"amount": "0.00001"}, "amount"),
        ({"amount": "1000000.01"}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"model": ""}, "model"),
        ({"model": "m" * 101}, "model"),
        ({"request_id": ""}, "request_id"),
        ({"request_id": "r" * 129}, "request_id"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(session, kwargs, field):
    user = UserFactory(balance="5.00")
    audits_before = session.scalar(select(func.count()).select_from(AuditLog))
    with pytest.raises(InvalidRequest) as raised:
        charge(session, user, **kwargs)
    assert raised.value.field == field
    assert balance_of(session, user) == Decimal("5.00")
    assert count_rows(session, UsageLog, user) == 0
    assert session.scalar(select(func.count()).select_from(AuditLog)) == audits_before


def test_charge_for_an_unknown_user_raises_user_not_found(session):
    with pytest.raises(UserNotFound):
        charge_usage(session, user_id=uuid.uuid4(), amount="1.00", model="m", request_id="r", ctx=INTERNAL)
