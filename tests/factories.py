"""factory-boy factories. Balances are given through the ledger core, so `ledger verify` holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from ledger.db import atomic
from ledger.models import BillingAccount, InviteRelation, PaymentTransaction, UsageLog, User
from ledger.services.books.accounts import credit
from ledger.services.context import SYSTEM
from ledger.services.people.profile import username_keys

PASSWORD = "correct-horse-42"
# The suite's PASSWORD_HASH: one round of PBKDF2 (production's scrypt is slow on purpose, and is
# tested on its own); the factories' people have their password hashed so, once.
FAST_PASSWORD_HASH = "pbkdf2:sha256:1"
_PASSWORD_HASH = generate_password_hash(PASSWORD, method=FAST_PASSWORD_HASH)
_session: Session | None = None


def bind(session: Session | None) -> None:
    """Point the factories at the test's session (None: no session, for committed tests)."""
    global _session
    _session = session


def current_session() -> Session:
    assert _session is not None, "factories need the `session` fixture"
    return _session


class ModelFactory(factory.alchemy.SQLAlchemyModelFactory):
    """Rows written into the test's session, flushed (the test's transaction is rolled back)."""

    class Meta:
        abstract = True
        sqlalchemy_session_factory = current_session
        sqlalchemy_session_persistence = "flush"


class UserFactory(ModelFactory):
    class Meta:
        model = User

    id = factory.LazyFunction(uuid.uuid4)
    email = factory.Sequence(lambda n: f"person{n}-{uuid.uuid4().hex[:6]}@example.com")
    password_hash = _PASSWORD_HASH
    invite_code = factory.LazyFunction(lambda: uuid.uuid4().hex[:12])
    username = None
    username_key = factory.LazyAttribute(lambda user: username_keys(user.username)[0])
    username_shape = factory.LazyAttribute(lambda user: username_keys(user.username)[1])

    @factory.post_generation
    def balance(user: User, create: bool, extracted: Decimal | str | None, **_kwargs) -> None:
        """`UserFactory(balance="10.00")`: an account, credited through the ledger as an adjustment."""
        session = current_session()
        session.add(BillingAccount(user_id=user.id, balance=Decimal(0)))
        session.flush()
        if extracted:
            with atomic(session):
                credit(
                    session,
                    user_id=user.id,
                    amount=Decimal(extracted),
                    kind="adjustment",
                    ctx=SYSTEM,
                    action="balance.adjusted",
                    memo="test factory",
                )


class PaymentFactory(ModelFactory):
    """A pending top-up order as create_topup leaves it after XorPay said ok."""

    class Meta:
        model = PaymentTransaction

    class Params:
        user = factory.SubFactory(UserFactory)

    id = factory.LazyFunction(uuid.uuid4)
    user_id = factory.SelfAttribute("user.id")
    amount = Decimal("50.00")
    status = "pending"
    pay_type = "alipay"
    provider_order_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    meta = factory.LazyAttribute(lambda o: {"qr": f"https://qr.alipay.com/{o.provider_order_id}"})
    expires_at = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(minutes=30))


class InviteFactory(ModelFactory):
    """An invitation, not yet rewarded."""

    class Meta:
        model = InviteRelation

    id = factory.LazyFunction(uuid.uuid4)
    inviter = factory.SubFactory(UserFactory)
    invitee = factory.SubFactory(UserFactory)


class UsageFactory(ModelFactory):
    """A usage log row as reports read it (without its ledger entry: for report tests only)."""

    class Meta:
        model = UsageLog

    class Params:
        user = factory.SubFactory(UserFactory)

    id = factory.LazyFunction(uuid.uuid4)
    user_id = factory.SelfAttribute("user.id")
    amount = Decimal("1.00")
    model = "image-studio-v2"
    params = factory.LazyFunction(dict)
    request_id = factory.Sequence(lambda n: f"req-{n}")
    balance_after = Decimal("100.00")
