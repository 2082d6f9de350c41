"""A state machine (hypothesis) over charges, holds, captures, releases, expiries and top-ups: after
every step the books keep invariants 1-3 and 7-8 and agree with a simple model of the account."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import text

from ledger.db import atomic
from ledger.errors import CaptureExceedsHold, HoldSettled, InsufficientBalance, RequestIdConflict
from ledger.models import BillingAccount, LedgerKind
from ledger.services.books.accounts import credit
from ledger.services.books.charges import charge_usage
from ledger.services.books.holds import capture_hold, expire_holds, money_on_hold, place_hold, release_hold
from ledger.services.books.invariants import find_breaches
from ledger.services.context import INTERNAL, SYSTEM
from tests.factories import UserFactory

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("8"), places=2)
request_ids = st.sampled_from([f"r{i}" for i in range(8)])  # a small space: replays and conflicts happen


@dataclass
class ModelHold:
    id: object
    amount: Decimal
    status: str = "active"  # active, due (past its expiry, not yet written), captured, released, expired
    captured: Decimal | None = None


def test_any_sequence_of_hold_operations_keeps_the_books(session):
    class Books(RuleBasedStateMachine):
        placed = Bundle("placed")  # request ids that have a hold: what captures and releases aim at

        def __init__(self) -> None:
            super().__init__()
            self.user = UserFactory(balance="10.00")
            self.balance = Decimal("10.00")
            self.holds: dict[str, ModelHold] = {}
            self.charged: dict[str, Decimal] = {}

        @property
        def held(self) -> Decimal:
            return sum((h.amount for h in self.holds.values() if h.status == "active"), Decimal(0))

        def account_locked(self) -> None:
            """An operation that locks the account expires its past-due holds first (written when it
            succeeds: a refusal rolls back the whole transaction; the expiry job writes them then)."""
            for h in self.holds.values():
                if h.status == "due":
                    h.status = "expired"

        @rule(request_id=request_ids, amount=amounts)
        def charge(self, request_id, amount):
            try:
                result = charge_usage(
                    session, user_id=self.user.id, amount=amount, model="m", request_id=request_id, ctx=INTERNAL
                )
            except RequestIdConflict:
                assert request_id in self.holds or self.charged.get(request_id) not in (None, amount)
                return
            except InsufficientBalance as short:
                assert amount > self.balance - self.held and short.available == self.balance - self.held
                return
            assert request_id not in self.holds
            self.account_locked()
            if not result.replayed:
                self.balance -= amount
                self.charged[request_id] = amount

        @rule(target=placed, request_id=request_ids, amount=amounts)
        def place(self, request_id, amount):
            try:
                answer = place_hold(
                    session, user_id=self.user.id, amount=amount, model="m", request_id=request_id, ctx=INTERNAL
                )
            except RequestIdConflict:
                known = self.holds.get(request_id)
                assert request_id in self.charged or (known is not None and known.amount != amount)
                return request_id
            except InsufficientBalance:
                assert amount > self.balance - self.held
                return request_id
            self.account_locked()
            if not answer.replayed:
                assert request_id not in self.holds and request_id not in self.charged
                self.holds[request_id] = ModelHold(answer.hold.id, amount)
            assert answer.available == self.balance - self.held
            return request_id

        @rule(request_id=placed, fraction=st.sampled_from(["0.5", "1", "1.01"]))
        def capture(self, request_id, fraction):
            known = self.holds.get(request_id)
            if known is None:
                return
            amount = (known.amount * Decimal(fraction)).quantize(Decimal("0.01"))
            if amount <= 0:
                return
            try:
                answer = capture_hold(session, hold_id=known.id, amount=format(amount, "f"), ctx=INTERNAL)
            except HoldSettled:
                assert known.status != "active" and not (known.status == "captured" and known.captured == amount)
                return
            except CaptureExceedsHold:
                assert known.status == "active" and amount > known.amount
                return
            self.account_locked()
            if answer.replayed:
                assert (known.status, known.captured) == ("captured", amount)
            else:
                assert known.status == "active" and amount > 0
                known.status, known.captured = "captured", amount
                self.balance -= amount
            assert answer.hold.captured_amount == amount

        @rule(request_id=placed)
        def release(self, request_id):
            known = self.holds.get(request_id)
            if known is None:
                return
            try:
                answer = release_hold(session, hold_id=known.id, ctx=INTERNAL)
            except HoldSettled:
                assert known.status in ("captured", "expired", "due")
                return
            self.account_locked()
            assert known.status in ("active", "released") and answer.replayed == (known.status == "released")
            known.status = "released"

        @rule(request_id=placed)
        def time_passes_for(self, request_id):
            """The hold's expiry comes: from now on it counts no more, even before anything writes it."""
            known = self.holds.get(request_id)
            if known is not None and known.status == "active":
                past = datetime.now(UTC) - timedelta(seconds=1)
                session.execute(
                    text("UPDATE holds SET created_at = :t - interval '1 hour', expires_at = :t WHERE id = :id"),
                    {"t": past, "id": known.id},
                )
                known.status = "due"

        @rule()
        def expiry_job(self):
            expire_holds(session, SYSTEM)
            self.account_locked()

        @rule(amount=amounts)
        def top_up(self, amount):
            with atomic(session):
                credit(
                    session,
                    user_id=self.user.id,
                    amount=amount,
                    kind=LedgerKind.ADJUSTMENT,
                    ctx=SYSTEM,
                    action="test",
                )
            self.account_locked()
            self.balance += amount

        @invariant()
        def books_agree(self):
            session.expire_all()
            account = session.get(BillingAccount, self.user.id)
            assert account.balance == self.balance
            due = sum((h.amount for h in self.holds.values() if h.status == "due"), Decimal(0))
            assert account.held == self.held + due  # written at the next lock of the account
            assert (
                money_on_hold(session, self.user.id, now=datetime.now(UTC)).held == self.held
            )  # what a person sees: due counts no more
            assert list(find_breaches(session)) == []

    run_state_machine_as_test(
        Books,
        settings=settings(
            max_examples=20,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
