"""SQLAlchemy 2.0 typed models: columns, constraints, relationships. No business rules.

The constraints here are the last line of defence for SPEC 4: a negative balance, a request
charged twice or a usage log without its ledger entry cannot be written, whatever the code above does.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

Money = Numeric(18, 4)


class PayType(StrEnum):
    """How a top-up is paid: XorPay's `pay_type` (SPEC 7), sent to it and kept on the order."""

    ALIPAY = "alipay"
    NATIVE = "native"  # WeChat Pay: a QR code scanned with WeChat ("native" in WeChat's terms)


class PaymentStatus(StrEnum):
    """A top-up order's status, and the moves between them (SPEC 3, 7)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"

    def can_become(self, new: PaymentStatus) -> bool:
        return new in _PAYMENT_MOVES[self]


# A late payment that the gateway proves (signed notify or query2) still succeeds an expired or
# failed order: the person paid, so the money must arrive. Succeeded is final.
_PAYMENT_MOVES: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.EXPIRED}),
    PaymentStatus.EXPIRED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.SUCCEEDED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A status move the machine does not allow: a bug, never a person's mistake."""


class HoldStatus(StrEnum):
    """A hold's status (SPEC 11): active until it is settled, once, by a capture, a release or its expiry."""

    ACTIVE = "active"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"

    def can_become(self, new: HoldStatus) -> bool:
        return self is HoldStatus.ACTIVE and new is not HoldStatus.ACTIVE


class VideoJobStatus(StrEnum):
    """A console video job (SPEC 11): in line, handed to a worker, running, then done or failed."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        return self in (VideoJobStatus.QUEUED, VideoJobStatus.STARTING, VideoJobStatus.RUNNING)


class LedgerKind(StrEnum):
    """Why a balance changed. Each kind names the row that caused it and moves money one way (an
    adjustment either way: an admin credits or debits by hand)."""

    TOPUP = "topup"
    USAGE = "usage"
    INVITE_REWARD = "invite_reward"
    ADJUSTMENT = "adjustment"
    REFUND = "refund"
    REDEMPTION = "redemption"
    EXPIRY = "expiry"  # a lot's money expired (SPEC 20)
    PLAN = "plan"  # a plan period's allowance granted (SPEC 21)

    def allows(self, amount: Decimal) -> bool:
        """Does this kind move money by `amount` (negative: a debit)?"""
        if self is LedgerKind.ADJUSTMENT:
            return amount != 0
        return (amount < 0) == (self in (LedgerKind.USAGE, LedgerKind.REFUND, LedgerKind.EXPIRY))

    @property
    def lot_category(self) -> LotCategory:
        """The kind of money a credit of this kind adds (SPEC 20): what a person paid for, what a
        plan period gives, or what was given (a reward, a code, an admin's credit)."""
        if self is LedgerKind.TOPUP:
            return LotCategory.PAID
        if self is LedgerKind.PLAN:
            return LotCategory.PLAN
        if self in (LedgerKind.INVITE_REWARD, LedgerKind.REDEMPTION, LedgerKind.ADJUSTMENT):
            return LotCategory.GRANTED
        raise ValueError(f"{self} is not a credit")


class LimitPeriod(StrEnum):
    """The period a spending limit counts over, in the person's time zone (SPEC 22)."""

    DAY = "day"
    MONTH = "month"


class LimitSetter(StrEnum):
    """Who set a spending limit: the person on /account, or an admin (the lower of the two applies)."""

    PERSON = "person"
    ADMIN = "admin"


class PlanPeriod(StrEnum):
    """How long a plan's period lasts (SPEC 21): to the same local time a week or a calendar month
    later, in the person's time zone."""

    WEEK = "week"
    MONTH = "month"


class SubscriptionStatus(StrEnum):
    """A subscription (SPEC 21): `active` renews at its period's end; `cancelled` does not (its
    allowance stays until the period ends); `lapsed` has ended, once, for a reason (LapseReason)."""

    ACTIVE = "active"
    CANCELLED = "cancelled"
    LAPSED = "lapsed"

    def can_become(self, new: SubscriptionStatus) -> bool:
        return new in _SUBSCRIPTION_MOVES[self]


_SUBSCRIPTION_MOVES: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    SubscriptionStatus.ACTIVE: frozenset({SubscriptionStatus.CANCELLED, SubscriptionStatus.LAPSED}),
    SubscriptionStatus.CANCELLED: frozenset({SubscriptionStatus.LAPSED}),
    SubscriptionStatus.LAPSED: frozenset(),
}


class LapseReason(StrEnum):
    """Why a subscription ended at its period's end instead of renewing (SPEC 21)."""

    CANCELLED = "cancelled"  # the person (or the SaaS) turned auto-renew off
    INSUFFICIENT_BALANCE = "insufficient_balance"  # the balance could not pay the next period
    PLAN_RETIRED = "plan_retired"  # an admin retired the plan: it sells nothing new
    ACCOUNT_DISABLED = "account_disabled"  # an admin disabled the account: it cannot be charged
    SPENDING_LIMIT_REACHED = "spending_limit_reached"  # the price would pass a spending limit (SPEC 22)


class LotCategory(StrEnum):
    """What money a credit lot holds (SPEC 20), listed in the order a charge spends lots that expire
    at the same instant: plan money first, then given money, paid money last."""

    PLAN = "plan"
    GRANTED = "granted"
    PAID = "paid"

    @property
    def rank(self) -> int:
        return list(LotCategory).index(self)


class UnrewardedReason(StrEnum):
    """Why a first top-up paid no invitation reward (SPEC 19)."""

    FIRST_TOPUP_TOO_SMALL = "first_topup_too_small"  # below INVITE_REWARD_MIN_TOPUP
    MONTHLY_LIMIT = "monthly_limit"  # the inviter was rewarded INVITE_REWARD_MAX_PER_MONTH times in 30 days


class RefundStatus(StrEnum):
    """A refund (SPEC 15): pending from before XorPay is asked until its answer is known, then once
    succeeded (the money left) or failed (it did not)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EventType(StrEnum):
    """What an event to the SaaS says happened (SPEC 16)."""

    TOPUP_SUCCEEDED = "topup.succeeded"
    BALANCE_LOW = "balance.low"
    HOLD_EXPIRED = "hold.expired"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    REDEMPTION_REDEEMED = "redemption.redeemed"
    BALANCE_ADJUSTED = "balance.adjusted"
    CREDIT_EXPIRING = "credit.expiring"
    CREDIT_EXPIRED = "credit.expired"
    SUBSCRIPTION_RENEWED = "subscription.renewed"
    SUBSCRIPTION_LAPSED = "subscription.lapsed"
    LIMIT_REACHED = "limit.reached"


class EventStatus(StrEnum):
    """An event's delivery: pending (retried with backoff) until a 2xx, or given up after 24 hours."""

    PENDING = "pending"
    DELIVERED = "delivered"
    ABANDONED = "abandoned"


class Actor(StrEnum):
    """Who acted, in the audit trail (SPEC 3)."""

    USER = "user"
    INTERNAL = "internal"
    XORPAY = "xorpay"
    SYSTEM = "system"
    ADMIN = "admin"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _stored(enum: type[StrEnum], length: int) -> Enum:
    """An enum stored as its value in a VARCHAR (a CHECK constraint lists the values)."""
    return Enum(
        enum, native_enum=False, create_constraint=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONB}


def _created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class User(UserMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored lower-cased, so the unique constraint is case-insensitive.
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("username IS NULL OR char_length(username) BETWEEN 3 AND 30", name="username_length"),
        # Usernames are unique by two keys (SPEC 19), both made in Python (profile.username_keys):
        # `username_key`, NFKC, case folded and reduced to Unicode's confusables skeleton, so that
        # "Alice", "alice", the full-width "ａｌｉｃｅ" and "ɑlice" (Latin alpha) are one name; and
        # `username_shape`, the skeleton of the name as pages show it, capitals kept, so that
        # "PaypaI" (capital i) is "Paypal". Migration 0017 set some old names' keys aside as
        # "<key> <id>" (a space no username has).
        Index("uq_users_username_key", "username_key", unique=True),
        Index("uq_users_username_shape", "username_shape", unique=True),
        CheckConstraint("(username IS NULL) = (username_key IS NULL)", name="username_with_key"),
        CheckConstraint("(username IS NULL) = (username_shape IS NULL)", name="username_with_shape"),
        CheckConstraint(r"external_id ~ '^[A-Za-z0-9._:-]{1,128}$'", name="external_id_shape"),
        CheckConstraint(
            "low_balance_threshold >= 0 AND low_balance_threshold = round(low_balance_threshold, 2)",
            name="low_balance_threshold_cents",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # The SaaS's own id of the person (SPEC 25), set when its backend creates or finds the account.
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    # None: an account made by the SaaS's backend whose person has not set a password (they come in
    # through portal links until they do).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(30))
    username_key: Mapped[str | None] = mapped_column(Text)  # a skeleton can be 7 times the name
    username_shape: Mapped[str | None] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(String(100))
    website: Mapped[str | None] = mapped_column(String(200))
    avatar: Mapped[str | None] = mapped_column(String(100))
    invite_code: Mapped[str] = mapped_column(String(16), unique=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    disabled_at: Mapped[datetime | None]  # by an admin: cannot sign in, cannot be charged; the money stays
    # Their own low-balance threshold (SPEC 16); None: the site's LOW_BALANCE_THRESHOLD.
    low_balance_threshold: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = _created_at()

    account: Mapped[BillingAccount] = relationship(back_populates="user", uselist=False)

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class UserSession(Base):
    """One row per login; revoking it ends that browser's session on its next request."""

    __tablename__ = "user_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()
    last_seen_at: Mapped[datetime] = _created_at()
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    revoked_at: Mapped[datetime | None]


class PortalToken(Base):
    """A link the SaaS's backend asked for (SPEC 25): it signs its person in once, before it expires.
    Only the token's SHA-256 is kept: a leaked table signs nobody in."""

    __tablename__ = "portal_tokens"
    __table_args__ = (
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        CheckConstraint("(used_at IS NULL) = (session_id IS NULL)", name="used_with_session"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    next_path: Mapped[str] = mapped_column(String(500))
    return_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # The login session it started (None until used).
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_sessions.id", ondelete="CASCADE"))


class BillingAccount(Base):
    """A person's money: `balance`, of which `held` is set aside by active holds (SPEC 11).
    What can be spent is the available amount, balance - held."""

    __tablename__ = "billing_accounts"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("held >= 0 AND held <= balance", name="held_within_balance"),
        CheckConstraint("currency = 'CNY'", name="currency_cny"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default=text("0"))
    held: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default=text("0"))
    currency: Mapped[str] = mapped_column(String(3), default="CNY", server_default=text("'CNY'"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    user: Mapped[User] = relationship(back_populates="account")

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class UsageLog(Base):
    """One row per charge. (user_id, request_id) is unique: a request is charged at most once."""

    __tablename__ = "usage_logs"
    __table_args__ = (
        UniqueConstraint("user_id", "request_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        # Reports and pages read a person's usage by time; amount and model ride along in the index
        # so that totals and groups are index-only scans.
        Index(
            "ix_usage_logs_user_id_created_at_id", "user_id", "created_at", "id", postgresql_include=["amount", "model"]
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    model: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))
    request_id: Mapped[str] = mapped_column(String(128))
    balance_after: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = _created_at()


class Hold(Base):
    """Money set aside for a long job (SPEC 11): captured (what the job cost, as a usage log),
    released, or expired, exactly once. While active its amount counts in the account's `held`.
    Its request_id shares the person's namespace with the deducts (one charge per request)."""

    __tablename__ = "holds"
    __table_args__ = (
        UniqueConstraint("user_id", "request_id"),
        UniqueConstraint("usage_log_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_in("status", HoldStatus), name="status_known"),
        CheckConstraint("(status = 'active') = (settled_at IS NULL)", name="settled_iff_not_active"),
        CheckConstraint("(status = 'captured') = (captured_amount IS NOT NULL)", name="captured_has_amount"),
        CheckConstraint("(status = 'captured') = (usage_log_id IS NOT NULL)", name="captured_has_usage"),
        CheckConstraint("captured_amount > 0 AND captured_amount <= amount", name="captured_within_amount"),
        CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        Index("ix_holds_user_id_created_at", "user_id", "created_at"),
        # The expiry job and each account's own expiry read the active holds by their expiry.
        Index("ix_holds_active_expires_at", "expires_at", postgresql_where=text("status = 'active'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[HoldStatus] = mapped_column(
        _stored(HoldStatus, 16), default=HoldStatus.ACTIVE, server_default=text("'active'")
    )
    request_id: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
    captured_amount: Mapped[Decimal | None] = mapped_column(Money)
    usage_log_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("usage_logs.id", ondelete="RESTRICT"))
    # The account as the settlement left it, so that a repeated capture or release answers the same.
    settled_balance: Mapped[Decimal | None] = mapped_column(Money)
    settled_available: Mapped[Decimal | None] = mapped_column(Money)

    # Lets the unit of work insert the usage log before the hold that names it.
    usage_log: Mapped[UsageLog | None] = relationship()

    @property
    def released_amount(self) -> Decimal | None:
        """What went back to the available amount: all of it unless captured, then the rest."""
        if self.status is HoldStatus.ACTIVE:
            return None
        return self.amount - (self.captured_amount or 0)

    def settle(self, status: HoldStatus, at: datetime) -> None:
        """Settle an active hold, refusing any second settlement."""
        if not self.status.can_become(status):
            raise IllegalTransition(f"hold {self.id}: {self.status} -> {status} is not allowed")
        self.status, self.settled_at = status, at


class VideoJob(Base):
    """A video generated on /console as a job: its hold sets the quoted maximum aside, the worker
    runs it, and what it produced is captured (or all released when it fails). At most
    VIDEO_JOBS_AT_ONCE of a person's jobs run at a time; the others wait in line, oldest first."""

    __tablename__ = "video_jobs"
    __table_args__ = (
        UniqueConstraint("hold_id"),
        CheckConstraint(_in("status", VideoJobStatus), name="status_known"),
        CheckConstraint("outcome IN ('complete', 'short', 'fail')", name="outcome_known"),
        CheckConstraint("seconds > 0 AND (seconds_produced IS NULL OR seconds_produced <= seconds)", name="seconds"),
        Index("ix_video_jobs_user_id_created_at", "user_id", "created_at"),
        # The line of each person, and the jobs a stalled worker left behind.
        Index(
            "ix_video_jobs_active",
            "user_id",
            "created_at",
            postgresql_where=text("status IN ('queued', 'starting', 'running')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    hold_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("holds.id", ondelete="RESTRICT"))
    quality: Mapped[str] = mapped_column(String(16))
    seconds: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(16))  # what the simulation does: complete, short, fail
    status: Mapped[VideoJobStatus] = mapped_column(
        _stored(VideoJobStatus, 16), default=VideoJobStatus.QUEUED, server_default=text("'queued'")
    )
    seconds_produced: Mapped[int | None]
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    failure: Mapped[str | None] = mapped_column(String(32))  # why it failed: simulated, interrupted, expired

    hold: Mapped[Hold] = relationship()


class Refund(Base):
    """Money of a paid order given back through XorPay (SPEC 15). Committed pending, its amount held,
    before XorPay is asked (its refund carries no idempotency key): a timeout leaves it pending, and
    the order blocked, until an admin resolves it."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0 AND amount = round(amount, 2)", name="amount_positive_cents"),
        CheckConstraint(_in("status", RefundStatus), name="status_known"),
        CheckConstraint("(status = 'pending') = (settled_at IS NULL)", name="settled_iff_not_pending"),
        Index("ix_refunds_payment_transaction_id_created_at", "payment_transaction_id", "created_at"),
        Index("ix_refunds_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    payment_transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payment_transactions.id", ondelete="RESTRICT")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[RefundStatus] = mapped_column(
        _stored(RefundStatus, 16), default=RefundStatus.PENDING, server_default=text("'pending'")
    )
    admin_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = _created_at()
    settled_at: Mapped[datetime | None]
    gateway_answer: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))

    def settle(self, status: RefundStatus, at: datetime) -> None:
        if self.status is not RefundStatus.PENDING or status is RefundStatus.PENDING:
            raise IllegalTransition(f"refund {self.id}: {self.status} -> {status} is not allowed")
        self.status, self.settled_at = status, at


class CodeBatch(Base):
    """Redemption codes made together (SPEC 14): one amount, one expiry, a note; disabled together."""

    __tablename__ = "code_batches"
    __table_args__ = (
        CheckConstraint("amount > 0 AND amount = round(amount, 2)", name="amount_positive_cents"),
        CheckConstraint("count BETWEEN 1 AND 10000", name="count_range"),
        CheckConstraint("credit_days BETWEEN 1 AND 3650", name="credit_days_range"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    amount: Mapped[Decimal] = mapped_column(Money)
    count: Mapped[int]
    note: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    # The credit a code gives expires this many days of 24 hours after its redemption (SPEC 20);
    # None: GRANT_EXPIRY_DAYS, the site's rule for gifts.
    credit_days: Mapped[int | None] = mapped_column(SmallInteger)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = _created_at()
    disabled_at: Mapped[datetime | None]


class RedemptionCode(Base):
    """A code worth `amount`, redeemed once (SPEC 14). Stored as 16 characters without dashes."""

    __tablename__ = "redemption_codes"
    __table_args__ = (
        CheckConstraint("code ~ '^[A-HJ-NP-Z2-9]{16}$'", name="code_alphabet"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("(redeemed_by IS NULL) = (redeemed_at IS NULL)", name="redeemed_together"),
        Index("ix_redemption_codes_batch_id", "batch_id"),
        Index("ix_redemption_codes_redeemed_by", "redeemed_by", postgresql_where=text("redeemed_by IS NOT NULL")),
    )

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("code_batches.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    expires_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = _created_at()
    redeemed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    redeemed_at: Mapped[datetime | None]


class PaymentTransaction(Base):
    """One top-up order. Its id is the order_id XorPay knows; `provider_order_id` is XorPay's aoid.

    Its status moves only by `move_to`, along the moves PaymentStatus allows.
    """

    __tablename__ = "payment_transactions"
    __table_args__ = (
        CheckConstraint("amount > 0 AND amount = round(amount, 2)", name="amount_positive_cents"),
        CheckConstraint(_in("status", PaymentStatus), name="status_known"),
        CheckConstraint("provider = 'xorpay'", name="provider_known"),
        CheckConstraint(_in("pay_type", PayType), name="pay_type_known"),
        CheckConstraint("(status = 'succeeded') = (paid_at IS NOT NULL)", name="paid_at_iff_succeeded"),
        UniqueConstraint("provider_order_id"),
        Index("ix_payment_transactions_user_id_created_at", "user_id", "created_at"),
        # Reconciliation scans the pending orders only.
        Index("ix_payment_transactions_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    provider: Mapped[str] = mapped_column(String(16), default="xorpay", server_default=text("'xorpay'"))
    pay_type: Mapped[PayType] = mapped_column(
        _stored(PayType, 16), default=PayType.ALIPAY, server_default=text("'alipay'")
    )
    status: Mapped[PaymentStatus] = mapped_column(
        _stored(PaymentStatus, 16), default=PaymentStatus.PENDING, server_default=text("'pending'")
    )
    provider_order_id: Mapped[str | None] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _created_at()
    paid_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]

    def move_to(self, status: PaymentStatus) -> None:
        """Change the status, refusing any move the machine does not allow."""
        if not self.status.can_become(status):
            raise IllegalTransition(f"payment {self.id}: {self.status} -> {status} is not allowed")
        self.status = status


class InviteRelation(Base):
    """Who invited whom: one inviter per person (invitee unique), rewarded at most once."""

    __tablename__ = "invite_relations"
    __table_args__ = (
        UniqueConstraint("invitee_id"),
        CheckConstraint("inviter_id <> invitee_id", name="not_self"),
        CheckConstraint(
            "(rewarded_at IS NULL) = (inviter_reward IS NULL) AND (rewarded_at IS NULL) = (invitee_reward IS NULL)",
            name="rewarded_with_amounts",
        ),
        CheckConstraint("inviter_reward >= 0 AND invitee_reward >= 0", name="rewards_not_negative"),
        CheckConstraint(
            "unrewarded_reason IS NULL OR (rewarded_at IS NULL AND " + _in("unrewarded_reason", UnrewardedReason) + ")",
            name="unrewarded_reason_known",
        ),
        Index("ix_invite_relations_inviter_id_created_at", "inviter_id", "created_at"),
        Index("ix_invite_relations_inviter_id_rewarded_at", "inviter_id", "rewarded_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    inviter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    invitee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = _created_at()
    rewarded_at: Mapped[datetime | None]
    inviter_reward: Mapped[Decimal | None] = mapped_column(Money)
    invitee_reward: Mapped[Decimal | None] = mapped_column(Money)
    # Why the invitee's first top-up paid no reward (SPEC 19); the SaaS may still pay it by the API.
    unrewarded_reason: Mapped[UnrewardedReason | None] = mapped_column(_stored(UnrewardedReason, 32))

    inviter: Mapped[User] = relationship(foreign_keys=[inviter_id])
    invitee: Mapped[User] = relationship(foreign_keys=[invitee_id])


class LedgerEntry(Base):
    """Append-only: one row per balance change, with the balance it left.

    Each entry names the row that caused it; a usage log has exactly one entry (unique), and the
    kind must agree with the reference it carries.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
        CheckConstraint(_in("kind", LedgerKind), name="kind_known"),
        CheckConstraint("(kind = 'usage') = (usage_log_id IS NOT NULL)", name="usage_has_usage_log"),
        CheckConstraint("kind <> 'usage' OR amount < 0", name="usage_is_debit"),
        CheckConstraint("(kind = 'topup') = (payment_transaction_id IS NOT NULL)", name="topup_has_payment"),
        CheckConstraint("kind <> 'topup' OR amount > 0", name="topup_is_credit"),
        CheckConstraint("(kind = 'invite_reward') = (invite_relation_id IS NOT NULL)", name="reward_has_invite"),
        CheckConstraint("kind <> 'invite_reward' OR amount > 0", name="reward_is_credit"),
        CheckConstraint("(kind = 'refund') = (refund_id IS NOT NULL)", name="refund_has_refund"),
        CheckConstraint("kind <> 'refund' OR amount < 0", name="refund_is_debit"),
        CheckConstraint("(kind = 'redemption') = (redemption_code IS NOT NULL)", name="redemption_has_code"),
        CheckConstraint("kind <> 'redemption' OR amount > 0", name="redemption_is_credit"),
        # A subscription's allowance names its period; plan money may also come without one (a test's,
        # an operator's correction), and nothing but plan money names a period.
        CheckConstraint("kind = 'plan' OR subscription_period_id IS NULL", name="period_only_on_plan"),
        CheckConstraint("kind <> 'plan' OR amount > 0", name="plan_is_credit"),
        UniqueConstraint("refund_id"),
        UniqueConstraint("redemption_code"),
        UniqueConstraint("usage_log_id"),
        UniqueConstraint("payment_transaction_id"),
        UniqueConstraint("subscription_period_id"),  # a plan period's allowance is granted once
        # One reward entry per person per invitation: a second reward cannot be written.
        UniqueConstraint("invite_relation_id", "user_id"),
        Index("ix_ledger_entries_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    balance_after: Mapped[Decimal] = mapped_column(Money)
    kind: Mapped[LedgerKind] = mapped_column(_stored(LedgerKind, 20))
    usage_log_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("usage_logs.id", ondelete="RESTRICT"))
    payment_transaction_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_transactions.id", ondelete="RESTRICT")
    )
    invite_relation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invite_relations.id", ondelete="RESTRICT"))
    refund_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("refunds.id", ondelete="RESTRICT"))
    redemption_code: Mapped[str | None] = mapped_column(ForeignKey("redemption_codes.code", ondelete="RESTRICT"))
    # A plan period whose allowance this entry grants (SPEC 21).
    subscription_period_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscription_periods.id", ondelete="RESTRICT")
    )
    memo: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()

    # Relationships to source rows let the unit of work insert the source before its entry.
    usage_log: Mapped[UsageLog | None] = relationship()
    payment_transaction: Mapped[PaymentTransaction | None] = relationship()
    invite_relation: Mapped[InviteRelation | None] = relationship()


class SpendingLimit(Base):
    """A cap on what a period may take from the person's wallet (SPEC 22), one per period and setter."""

    __tablename__ = "spending_limits"
    __table_args__ = (
        UniqueConstraint("user_id", "period", "set_by"),
        CheckConstraint(_in("period", LimitPeriod), name="period_known"),
        CheckConstraint(_in("set_by", LimitSetter), name="set_by_known"),
        CheckConstraint("amount >= 0 AND amount = round(amount, 2)", name="amount_cents"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    period: Mapped[LimitPeriod] = mapped_column(_stored(LimitPeriod, 8))
    amount: Mapped[Decimal] = mapped_column(Money)
    set_by: Mapped[LimitSetter] = mapped_column(_stored(LimitSetter, 8))
    # The start of the period whose limit.reached event was sent (once per period and limit).
    reached_for: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class Plan(Base):
    """A plan (套餐, SPEC 21): a price a period for an allowance of plan money. An admin's edit of
    its names, price or allowance applies from each subscription's next period (a period keeps what
    it was sold at: SubscriptionPeriod); its code and period stay. A retired plan sells nothing new."""

    __tablename__ = "plans"
    __table_args__ = (
        CheckConstraint("code ~ '^[a-z0-9-]{2,32}$'", name="code_shape"),
        CheckConstraint(_in("period", PlanPeriod), name="period_known"),
        CheckConstraint("price > 0 AND price = round(price, 2)", name="price_cents"),
        CheckConstraint("allowance > 0 AND allowance = round(allowance, 2)", name="allowance_cents"),
        CheckConstraint("active = (retired_at IS NULL)", name="retired_with_time"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    price: Mapped[Decimal] = mapped_column(Money)
    period: Mapped[PlanPeriod] = mapped_column(_stored(PlanPeriod, 8))
    allowance: Mapped[Decimal] = mapped_column(Money)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    retired_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class Subscription(Base):
    """A person's subscription to a plan (SPEC 21): its current period, how many periods were sold
    (`periods`, n of the last), and whether it renews. At most one active or cancelled subscription
    per person and plan. Periods are counted from `started_at` in `timezone` (the person's when
    they subscribed), so that 31 January is followed by the end of February, then 31 March."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(_in("status", SubscriptionStatus), name="status_known"),
        CheckConstraint("auto_renew = (status = 'active')", name="renews_while_active"),
        CheckConstraint("(status = 'lapsed') = (lapse_reason IS NOT NULL)", name="lapsed_with_reason"),
        CheckConstraint("(status = 'lapsed') = (lapsed_at IS NOT NULL)", name="lapsed_with_time"),
        CheckConstraint("lapse_reason IS NULL OR " + _in("lapse_reason", LapseReason), name="lapse_reason_known"),
        CheckConstraint("status <> 'cancelled' OR cancelled_at IS NOT NULL", name="cancelled_with_time"),
        CheckConstraint("current_period_end > current_period_start", name="period_forward"),
        CheckConstraint("current_period_start >= started_at", name="period_after_start"),
        CheckConstraint("periods >= 1", name="periods_positive"),
        Index(
            "uq_subscriptions_user_id_plan_id_held",
            "user_id",
            "plan_id",
            unique=True,
            postgresql_where=text("status IN ('active', 'cancelled')"),
        ),
        # The renewal job reads the subscriptions whose period has ended.
        Index("ix_subscriptions_due", "current_period_end", postgresql_where=text("status IN ('active', 'cancelled')")),
        Index("ix_subscriptions_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    status: Mapped[SubscriptionStatus] = mapped_column(_stored(SubscriptionStatus, 16))
    auto_renew: Mapped[bool] = mapped_column(Boolean)
    timezone: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    periods: Mapped[int]
    cancelled_at: Mapped[datetime | None]
    lapse_reason: Mapped[LapseReason | None] = mapped_column(_stored(LapseReason, 32))
    lapsed_at: Mapped[datetime | None]  # the end of its last period
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    plan: Mapped[Plan] = relationship()

    def move(self, new: SubscriptionStatus) -> None:
        """Change the status, or raise IllegalTransition (a lapsed subscription stays lapsed)."""
        if not SubscriptionStatus(self.status).can_become(new):
            raise IllegalTransition(f"subscription {self.id}: {self.status} -> {new}")
        self.status = new
        self.auto_renew = new is SubscriptionStatus.ACTIVE


class SubscriptionPeriod(Base):
    """One period sold of a subscription (SPEC 21): what it was sold at (the plan's price and
    allowance then), its charge (the usage log of request id `subscription:<id>:<n>`) and, through
    the ledger entry that names it, its allowance's plan lot, expiring at `ends_at`."""

    __tablename__ = "subscription_periods"
    __table_args__ = (
        UniqueConstraint("subscription_id", "n"),
        UniqueConstraint("usage_log_id"),
        CheckConstraint("n >= 1", name="n_positive"),
        CheckConstraint("ends_at > starts_at", name="forward"),
        CheckConstraint("price > 0 AND allowance > 0", name="amounts_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subscriptions.id", ondelete="RESTRICT"))
    n: Mapped[int]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    price: Mapped[Decimal] = mapped_column(Money)
    allowance: Mapped[Decimal] = mapped_column(Money)
    usage_log_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("usage_logs.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = _created_at()


class CreditLot(Base):
    """One credit's money (SPEC 20): a top-up or 补单 (`paid`), a reward, code or admin credit
    (`granted`), or a plan period's allowance (`plan`); `remaining` is what is left of it. A balance
    is the sum of its lots' remaining, always. Charges spend lots in one order: the soonest expiry
    first (never last), then plan, granted, paid (`spend_rank`), then the oldest, then by id.

    `reserved` is the part of a paid lot that a pending refund of its order has set aside (SPEC 15):
    it stays in the lot (and the balance) until the refund succeeds, but no charge draws it."""

    __tablename__ = "credit_lots"
    __table_args__ = (
        CheckConstraint(_in("category", LotCategory), name="category_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        CheckConstraint("reserved >= 0 AND reserved <= remaining", name="reserved_within_remaining"),
        CheckConstraint("category <> 'paid' OR expires_at IS NULL", name="paid_never_expires"),
        CheckConstraint("expires_at IS NULL OR expires_at > created_at", name="expires_after_creation"),
        # A charge reads the person's lots with money left, in the spending order.
        Index(
            "ix_credit_lots_spending",
            "user_id",
            text("expires_at NULLS LAST"),
            "spend_rank",
            "created_at",
            "id",
            postgresql_where=text("remaining > 0"),
        ),
        # The expiry job and the notices read lots with money left by their expiry.
        Index("ix_credit_lots_expires_at", "expires_at", postgresql_where=text("remaining > 0")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    category: Mapped[LotCategory] = mapped_column(_stored(LotCategory, 16))
    spend_rank: Mapped[int] = mapped_column(
        SmallInteger,
        Computed("CASE category WHEN 'plan' THEN 0 WHEN 'granted' THEN 1 ELSE 2 END", persisted=True),
    )
    # The credit's ledger entry, which names its source (the order, the invitation, the code, the
    # admin's adjustment or the plan period).
    ledger_entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id", ondelete="RESTRICT"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    remaining: Mapped[Decimal] = mapped_column(Money)
    reserved: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default=text("0"))
    expires_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]  # when its credit.expiring event was written (once a lot)
    # Its expiry, once written: its `expires_at`. What it still holds then is kept for the holds that
    # were active at that instant, and expires as they settle.
    expired_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()

    entry: Mapped[LedgerEntry] = relationship()


class LotDraw(Base):
    """Money taken from a lot: by a charge (its usage log) or by a ledger entry that is not a charge
    (an admin's debit, a refund, an expiry). The draws of one charge or entry sum to its amount."""

    __tablename__ = "lot_draws"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("num_nonnulls(usage_log_id, ledger_entry_id) = 1", name="one_source"),
        Index("ix_lot_draws_lot_id", "lot_id"),
        Index("ix_lot_draws_usage_log_id", "usage_log_id"),
        Index("ix_lot_draws_ledger_entry_id", "ledger_entry_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("credit_lots.id", ondelete="RESTRICT"))
    usage_log_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("usage_logs.id", ondelete="RESTRICT"))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Money)
    created_at: Mapped[datetime] = _created_at()

    lot: Mapped[CreditLot] = relationship()
    ledger_entry: Mapped[LedgerEntry | None] = relationship()


class UsageHourly(Base):
    """Usage summed per person, hour (UTC) and model, kept by statement triggers on usage_logs
    (migration 0016: an insert of many rows adds to each group once; an update or a delete, which
    only a manual fix makes, takes back what it removed).

    Reports over long ranges read these sums instead of every charge; `ledger verify` checks that
    they equal the usage logs.
    """

    __tablename__ = "usage_hourly"
    __table_args__ = (CheckConstraint("count > 0 AND amount > 0", name="positive"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(Money)


class NotifyRefusal(Base):
    """XorPay notifies refused, counted per source address, reason and minute (SPEC 19): a flood of
    forged posts adds to a count, not a row each. A refused notify that XorPay signed (an unknown
    order, a mismatched amount or aoid) is audited on its own as well: nobody else can make one."""

    __tablename__ = "notify_refusals"
    __table_args__ = (
        CheckConstraint("count > 0", name="count_positive"),
        Index("ix_notify_refusals_source_minute", "source", "minute"),
    )

    minute: Mapped[datetime] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)  # the client address, as PROXY_COUNT says
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime]
    sample: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))  # the last post


class AuditLog(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (
        CheckConstraint(_in("actor", Actor), name="actor_known"),
        Index("ix_audit_logs_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[Actor] = mapped_column(_stored(Actor, 16))
    action: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))
    # The request (X-Request-ID, SPEC 18) or job that wrote the row: one id across logs and rows.
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = _created_at()


class Event(Base):
    """An event to the SaaS (SPEC 16), written in the transaction of the change it tells of (an
    outbox) and delivered at least once by the worker; the receiver dedupes by `id`."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(_in("type", EventType), name="type_known"),
        CheckConstraint(_in("status", EventStatus), name="status_known"),
        CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name="delivered_iff_delivered_at"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The delivery job reads the pending events that are due.
        Index("ix_events_pending_next_attempt_at", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_events_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    type: Mapped[EventType] = mapped_column(_stored(EventType, 32))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))
    status: Mapped[EventStatus] = mapped_column(
        _stored(EventStatus, 16), default=EventStatus.PENDING, server_default=text("'pending'")
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = _created_at()
    give_up_at: Mapped[datetime]  # 24 hours after the event (or after its replay): then abandoned
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(300))
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = _created_at()
