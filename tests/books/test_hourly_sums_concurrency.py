"""The hourly usage sums (migration 0016's statement triggers) stay exact when two transactions
change the same (person, hour, model) at once: the remove path locks its groups' rows first, in key
order, then lowers or deletes them from a fresh snapshot."""

import threading
import uuid

import pytest
from sqlalchemy import Connection, text

from ledger.services.books.invariants import find_breaches
from tests.helpers import funded_user, wait_until_waiting_on_a_lock

pytestmark = pytest.mark.committed

AT = "2026-03-01 10:15:00+00"
ADD = text(
    "INSERT INTO usage_logs (id, user_id, amount, model, request_id, balance_after, created_at) "
    "VALUES (:id, :user_id, :amount, 'm', :request_id, 0, :at)"
)
REMOVE = text("DELETE FROM usage_logs WHERE id = :id")


def derived_breaches(committed) -> list[object]:
    with committed.session() as session:
        return [b for b in find_breaches(session) if b.invariant.startswith("derived")]


def add(connection: Connection, user_id: uuid.UUID, amount: int, request_id: str) -> uuid.UUID:
    usage_id = uuid.uuid4()
    connection.execute(ADD, {"id": usage_id, "user_id": user_id, "amount": amount, "request_id": request_id, "at": AT})
    return usage_id


def blocked_then_released(first: Connection, second_work) -> None:
    """Run `second_work` in a thread while `first` holds its transaction open, then commit `first`."""
    worker = threading.Thread(target=second_work)
    worker.start()
    wait_until_waiting_on_a_lock(first.engine)  # the second transaction waits on the first one's row lock
    first.commit()
    worker.join()


def test_a_delete_waiting_on_a_charge_of_the_same_hour_leaves_exact_sums(committed):
    user = funded_user(committed, "1.00")
    with committed.engine.begin() as setup:
        first_log = add(setup, user.id, 1, "r1")
    with committed.engine.connect() as charge, committed.engine.connect() as fix:
        add(charge, user.id, 2, "r2")  # holds the (person, hour, model) row of the sums

        def delete_first_log() -> None:
            fix.execute(REMOVE, {"id": first_log})
            fix.commit()

        blocked_then_released(charge, delete_first_log)
    assert derived_breaches(committed) == []


def test_two_deletes_emptying_one_hour_at_once_leave_no_sums(committed):
    user = funded_user(committed, "1.00")
    with committed.engine.begin() as setup:
        one, other = add(setup, user.id, 1, "r1"), add(setup, user.id, 2, "r2")
    with committed.engine.connect() as first, committed.engine.connect() as second:
        first.execute(REMOVE, {"id": one})

        def delete_other() -> None:
            second.execute(REMOVE, {"id": other})
            second.commit()

        blocked_then_released(first, delete_other)
    assert derived_breaches(committed) == []
    with committed.engine.connect() as check:
        assert check.scalar(text("SELECT count(*) FROM usage_hourly WHERE user_id = :u"), {"u": user.id}) == 0
