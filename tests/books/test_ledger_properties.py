"""Property tests: any sequence of charges, replays and credits keeps the books exact (SPEC 4)."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ledger.db import atomic
from ledger.errors import InsufficientBalance, RequestIdConflict
from ledger.models import BillingAccount, LedgerEntry, UsageLog
from ledger.money import InvalidAmount, format_amount, parse_amount, to_api
from ledger.services.books.accounts import credit
from ledger.services.books.charges import charge_usage
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL, SYSTEM
from tests.factories import UserFactory

amounts = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("50"), places=4)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("charge"), amounts, st.integers(min_value=0, max_value=15)),  # small id space: replays
        st.tuples(st.just("credit"), amounts, st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_any_sequence_of_operations_keeps_the_books_exact(session, ops):
    user = UserFactory(balance="10.00")  # a new person per example: the examples do not mix
    expected, charged = Decimal("10.00"), {}
    for kind, amount, n in ops:
        if kind == "credit":
            with atomic(session):
                credit(session, user_id=user.id, amount=amount, kind="adjustment", ctx=SYSTEM, action="test")
            expected += amount
            continue
        request_id = f"r{n}"
        try:
            result = charge_usage(
                session, user_id=user.id, amount=amount, model="m", request_id=request_id, ctx=INTERNAL
            )
        except InsufficientBalance as short:
            assert amount > expected and short.balance == expected and request_id not in charged
            continue
        except RequestIdConflict:
            assert request_id in charged and charged[request_id][0] != amount
            continue
        if result.replayed:  # the first answer, word for word
            assert (result.usage.amount, result.balance) == charged[request_id]
        else:
            assert request_id not in charged
            expected -= amount
            assert result.balance == expected
            charged[request_id] = (amount, expected)
    assert session.scalar(select(BillingAccount.balance).where(BillingAccount.user_id == user.id)) == expected
    count = select(func.count()).select_from(UsageLog).where(UsageLog.user_id == user.id)
    assert session.scalar(count) == len(charged)
    assert session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.user_id == user.id)) == expected
    assert list(find_breaches(session)) == []


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("99999999999999.9999"), places=4))
def test_money_round_trips_exactly_through_the_api_format(value):
    assert parse_amount(to_api(value)) == value
    assert Decimal(format_amount(value).replace(",", "")) == value


@given(st.text(max_size=30))
def test_parse_amount_either_refuses_or_returns_a_positive_exact_decimal(text):
    try:
        value = parse_amount(text)
    except InvalidAmount:
        return
    assert value > 0 and value == value.quantize(Decimal("0.0001")) and value == Decimal(text.strip())


@pytest.mark.parametrize("value", [Decimal("0.00005"), Decimal("1e-5")])
def test_parse_amount_refuses_what_storage_would_round(value):
    with pytest.raises(InvalidAmount):
        parse_amount(format(value, "f"))
