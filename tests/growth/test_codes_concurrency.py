"""Redemption codes under contention (SPEC 14, invariant 9): real threads, one connection each,
committed rows."""

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ledger.errors import CodeNotFound, CodeUsed, TooManyCodeTries
from ledger.models import Actor, AuditLog, LedgerEntry, RedemptionCode
from ledger.services.books.invariants import find_breaches
from ledger.services.context import Context
from ledger.services.growth.code_batches import create_batch
from ledger.services.growth.codes import redeem
from tests.helpers import CLI_ADMIN, balance_of, funded_user, run_together

pytestmark = pytest.mark.committed
PERSON = Context(Actor.USER)


def one_code(database, amount="50.00") -> str:
    with database.session() as session:
        _batch, (code,) = create_batch(
            session,
            CLI_ADMIN,
            count=1,
            amount=amount,
            expires=None,
            note=None,
            reason="test",
            tz=ZoneInfo("Asia/Shanghai"),
        )
    return code


def test_twenty_people_redeeming_one_code_at_once_credit_it_exactly_once(committed):
    code = one_code(committed)
    people = [funded_user(committed, "1.00") for _ in range(20)]

    def attempt(i):
        with committed.session() as session:
            return redeem(session, people[i].id, code, PERSON)

    results = run_together(20, attempt)

    won = [r for r in results if not isinstance(r, Exception)]
    assert len(won) == 1, [r for r in results if not isinstance(r, CodeUsed)]
    assert sum(isinstance(r, CodeUsed) for r in results) == 19
    with committed.session() as session:
        winner = session.get(RedemptionCode, code).redeemed_by
        assert [balance_of(session, p) for p in people if p.id == winner] == [Decimal("51.00")]
        assert sorted({balance_of(session, p) for p in people if p.id != winner}) == [Decimal("1.00")]
        entries = select(func.count()).where(LedgerEntry.kind == "redemption")
        assert session.scalar(entries) == 1
        assert list(find_breaches(session)) == []


def test_one_person_redeeming_one_code_twenty_times_at_once_is_credited_once(committed):
    code = one_code(committed, "7.00")
    person = funded_user(committed, "1.00")

    def attempt(_i):
        with committed.session() as session:
            return redeem(session, person.id, code.lower(), PERSON)

    results = run_together(20, attempt)

    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert sum(isinstance(r, CodeUsed) for r in results) == 19
    with committed.session() as session:
        assert balance_of(session, person) == Decimal("8.00")
        assert list(find_breaches(session)) == []


def test_parallel_unknown_codes_cannot_outrun_the_limit_of_ten(committed):
    person = funded_user(committed, "1.00")

    def attempt(i):
        with committed.session() as session:
            return redeem(session, person.id, f"GUESS-{i}", PERSON)

    results = run_together(30, attempt)

    assert sum(isinstance(r, CodeNotFound) for r in results) == 10
    assert sum(isinstance(r, TooManyCodeTries) for r in results) == 20
    with committed.session() as session:
        assert session.scalar(select(func.count()).where(AuditLog.action == "code.refused")) == 10
