"""The checks of the invariants (books.invariants): sound books have no breach; a tampered balance or
entry is named with its subject and detail; every check is reported as it runs."""

from sqlalchemy import text

from ledger.services.books.invariants import CHECKS, Breach, find_breaches
from tests.factories import UserFactory


def test_sound_books_have_no_breach_and_every_check_is_reported_as_it_runs(session):
    UserFactory(balance="3.00")
    ran: list[str] = []
    assert list(find_breaches(session, progress=ran.append)) == []
    assert ran == list(CHECKS)


def test_a_tampered_balance_breaks_the_three_checks_of_the_balance(session):
    user = UserFactory(balance="3.00")
    session.execute(text("UPDATE billing_accounts SET balance = 4 WHERE user_id = :u"), {"u": user.id})
    assert list(find_breaches(session)) == [
        Breach("2 balance equals the sum of the ledger", str(user.id), "balance 4.0000 but ledger sums to 3.0000"),
        Breach(
            "2 balance equals the newest entry's balance_after",
            str(user.id),
            "balance 4.0000 but newest entry says 3.0000",
        ),
        Breach(
            "10 balance equals the sum of the remaining of the account's lots",
            str(user.id),
            "balance 4.0000 but lots hold 3.0000",
        ),
    ]
