"""The ledger core: credit (SPEC 4 and 5)."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.db import atomic
from ledger.models import AuditLog, User
from ledger.services.books.accounts import credit
from ledger.services.context import SYSTEM
from tests.factories import UserFactory
from tests.helpers import balance_of


def test_credit_adds_to_balance_with_entry_and_audit_in_callers_transaction(session):
    user = UserFactory()
    with atomic(session):
        entry = credit(
            session,
            user_id=user.id,
            amount=Decimal("12.3400"),
            kind="adjustment",
            ctx=SYSTEM,
            action="payment.credited",
            details={"order": "o-1"},
        )
    assert (entry.amount, entry.balance_after, entry.kind) == (Decimal("12.3400"), Decimal("12.3400"), "adjustment")
    assert balance_of(session, user) == Decimal("12.34")
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "payment.credited")).one()
    assert audit.details == {"amount": "12.34", "kind": "adjustment", "balance_after": "12.34", "order": "o-1"}


@pytest.mark.parametrize("amount", [Decimal(0), Decimal("-1"), Decimal("0.00001"), "1.00", 1])
def test_credit_refuses_non_positive_or_imprecise_amounts(session, amount):
    user = UserFactory()
    with pytest.raises(ValueError), atomic(session):
        credit(session, user_id=user.id, amount=amount, kind="adjustment", ctx=SYSTEM, action="x")


def test_credit_outside_a_unit_of_work_is_a_programming_error(session):
    user = UserFactory()
    session.get(User, user.id)  # a read: a transaction is open, but no unit of work
    with pytest.raises(RuntimeError, match="atomic"):
        credit(session, user_id=user.id, amount=Decimal("1.00"), kind="adjustment", ctx=SYSTEM, action="x")


def test_a_unit_of_work_inside_another_refuses_before_committing_anything(session):
    user = UserFactory(balance="1.00")
    with pytest.raises(RuntimeError, match="inside another"), atomic(session):
        session.add(AuditLog(actor="system", action="outer", details={}))
        session.flush()
        with atomic(session):
            pass
    assert session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "outer")) == 0
    assert balance_of(session, user) == Decimal("1.00")
