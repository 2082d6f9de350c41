"""A batch of charges (books.batch_charges): one transaction, each item answered in order as one deduct
would be; what is not a list of 1 to 1,000 objects is refused with nothing written."""

import uuid
from decimal import Decimal

import pytest

from ledger.errors import InvalidRequest
from ledger.models import UsageLog
from ledger.services.books.batch_charges import MAX_ITEMS, charge_batch
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL
from tests.factories import UserFactory
from tests.helpers import balance_of, count_rows

MODEL = "image-studio-v2"


def test_each_item_is_answered_in_order_as_one_deduct_would_be(session):
    user = UserFactory(balance="10.00")
    item = {"user_id": str(user.id), "model": MODEL}
    results = charge_batch(
        session,
        charges=[
            {**item, "amount": "4.00", "request_id": "a"},
            {**item, "amount": "7.00", "request_id": "b"},
            {**item, "amount": "4.00", "request_id": "a"},
            {**item, "amount": "5.00", "request_id": "c"},
            {**item, "amount": "abc", "request_id": "d"},
            {**item, "user_id": str(uuid.uuid4()), "amount": "1.00", "request_id": "e"},
        ],
        ctx=INTERNAL,
    )
    assert [(r.index, r.status, r.balance) for r in results] == [
        (0, "charged", Decimal("6.00")),
        (1, "insufficient_balance", None),
        (2, "replayed", Decimal("6.00")),
        (3, "charged", Decimal("1.00")),
        (4, "invalid_request", None),
        (5, "user_not_found", None),
    ]
    assert balance_of(session, user) == Decimal("1.00")
    assert count_rows(session, UsageLog, user) == 2
    assert list(find_breaches(session)) == []


@pytest.mark.parametrize("charges", [None, {}, "[]", [], [{}] * (MAX_ITEMS + 1), [{}, "x"], [[]]])
def test_what_is_not_a_list_of_1_to_1000_objects_is_refused_with_nothing_written(session, charges):
    user = UserFactory(balance="10.00")
    with pytest.raises(InvalidRequest) as refused:
        charge_batch(session, charges=charges, ctx=INTERNAL)
    assert refused.value.field == "charges"
    assert balance_of(session, user) == Decimal("10.00")
