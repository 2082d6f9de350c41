"""Refunds through XorPay (SPEC 15): part or all of a succeeded order, given back once.

XorPay's refund carries no idempotency key (a retry after a timeout may refund twice), so: the
refund row is committed `pending` and its amount held (it cannot be spent meanwhile) before
XorPay is asked, with no transaction open during the call. `ok` debits it (ledger kind `refund`);
a clear refusal releases it (`failed`); an unknown outcome (timeout, 5xx, an unreadable answer)
leaves it pending and the order blocked until an admin, having looked at XorPay, resolves it.
Refundable = amount - refunded - pending, never more than what is left of the order's own paid lot
(SPEC 20: gift money is never paid out as cash) nor the person's available amount, at most
MAX_PER_ORDER refunds an order; the pending refund's money is set aside in that lot (`reserved`).
Locks: order, then account (as the notify); a refund, then account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import metrics, validation
from ledger.db import atomic, lock
from ledger.errors import NotFound, RefundRefused
from ledger.i18n import N_
from ledger.models import (
    EventType,
    LedgerKind,
    PaymentStatus,
    PaymentTransaction,
    Refund,
    RefundStatus,
)
from ledger.money import parse_amount, to_api
from ledger.services.audit import record_audit
from ledger.services.books.accounts import Funds, funds, lock_account, post
from ledger.services.books.lots import order_lot
from ledger.services.context import Context, reason_of
from ledger.services.events import emit_change
from ledger.services.payments.orders import order_by_id
from ledger.services.payments.xorpay import GatewayError, XorPayClient

MAX_PER_ORDER = 50
# XorPay's answers that say for sure the refund did not happen; anything else may have refunded.
REFUSALS = frozenset(
    {"order_error", "price_error", "sign_error", "alipay_api_error", "wechat_api_error", "missing_argument"}
)


@dataclass(frozen=True)
class RefundPlan:
    """A refund as the confirmation step shows it."""

    order: PaymentTransaction
    amount: Decimal
    refundable: Decimal
    balance: Decimal
    available: Decimal


def preview_refund_order(session: Session, admin: Context, transaction_id: object, amount: object) -> RefundPlan:
    """`refund_order`'s check, without writing: a refund of `amount` (an exact string, 2 decimals)."""
    order = order_by_id(session, transaction_id)
    value = parse_amount(amount, places=2)
    # as the person's pages read it: a hold past its expiry counts no more, even before it is written
    return _checked(session, order, value, funds(session, order.user_id, admin.now()))


def refund_order(
    session: Session, gateway: XorPayClient, admin: Context, transaction_id: object, amount: object, *, reason: object
) -> Refund:
    """Refund part or all of a succeeded order through XorPay (see the module's contract).

    Raises RefundRefused (not refundable now: see `_checked`), InvalidRequest, NotFound. Returns
    the refund, succeeded, failed or (the outcome unknown) pending.
    """
    why = reason_of(reason)
    value = parse_amount(amount, places=2)
    wanted = order_by_id(session, transaction_id).id
    with atomic(session):  # 1. the refund committed pending, its amount held, before XorPay hears of it
        order = lock(session, PaymentTransaction, PaymentTransaction.id == wanted)
        assert order is not None
        account = lock_account(session, order.user_id, admin)  # its holds past their expiry are written first
        _checked(session, order, value, Funds(account.balance, account.held))
        refund = Refund(
            id=uuid.uuid4(),
            payment_transaction_id=order.id,
            user_id=order.user_id,
            amount=value,
            reason=why,
            status=RefundStatus.PENDING,
            admin_id=admin.admin_id,
        )
        session.add(refund)
        account.held += value
        lot = order_lot(session, order.id)
        assert lot is not None  # _checked: a paid order has its lot
        lot.reserved += value  # no charge draws it while the refund is pending
        details = admin.admin_details(why, refund_id=str(refund.id), transaction_id=str(order.id), amount=to_api(value))
        record_audit(session, "refund.requested", ctx=admin, user_id=order.user_id, details=details)
        aoid = order.provider_order_id
    try:  # 2. no transaction is open while XorPay answers
        gateway.refund(aoid or "", f"{value:.2f}")
    except GatewayError as refused:
        if refused.gateway_status not in REFUSALS:  # a timeout or worse: XorPay may have refunded
            _note_unknown(session, refund.id, admin, refused)
            return _reload(session, refund.id)
        return settle_refund(session, admin, refund.id, succeeded=False, reason=why, answer=_answer(refused))
    return settle_refund(session, admin, refund.id, succeeded=True, reason=why, answer={"status": "ok"})


def settle_refund(
    session: Session, admin: Context, refund_id: object, *, succeeded: bool, reason: object, answer: dict | None = None
) -> Refund:
    """Settle a pending refund: succeeded debits its amount (kind `refund`), failed releases it.
    After XorPay's answer, or by an admin who resolved an unknown outcome at XorPay."""
    why = reason_of(reason)
    wanted = validation.uuid_of(refund_id, "refund_id", error=NotFound(N_("There is no such refund.")))
    with atomic(session):
        refund = lock(session, Refund, Refund.id == wanted)
        if refund is None:
            raise NotFound(N_("There is no such refund."))
        if refund.status is not RefundStatus.PENDING:
            raise RefundRefused(N_("This refund is already settled."))
        account = lock_account(session, refund.user_id, admin)
        account.held -= refund.amount  # what was set aside comes back first, then leaves if refunded
        refund.settle(RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED, admin.now())
        refund.gateway_answer = {**refund.gateway_answer, **(answer or {}), "resolved_by": admin.via}
        ctx = admin
        details = admin.admin_details(why, refund_id=str(refund.id), transaction_id=str(refund.payment_transaction_id))
        lot = order_lot(session, refund.payment_transaction_id)
        assert lot is not None
        if succeeded:
            session.flush()  # the refund row exists before its ledger entry names it
            post(  # from the order's own paid lot, what its pending refund set aside there
                session,
                user_id=refund.user_id,
                amount=-refund.amount,
                kind=LedgerKind.REFUND,
                ctx=ctx,
                action="refund.succeeded",
                details=details,
                lot=lot,
                refund_id=refund.id,
            )
        else:
            lot.reserved -= refund.amount
            record_audit(session, "refund.failed", ctx=ctx, user_id=refund.user_id, details=details)
        emit_change(
            session,
            EventType.REFUND_SUCCEEDED if succeeded else EventType.REFUND_FAILED,
            user_id=refund.user_id,
            refund_id=refund.id,
            transaction_id=refund.payment_transaction_id,
            amount=refund.amount,
        )
        metrics.count_on_commit(session, metrics.REFUNDS.labels(refund.status.value).inc)
    return refund


def refunds_of(session: Session, order_id: uuid.UUID) -> list[Refund]:
    return list(
        session.scalars(
            select(Refund).where(Refund.payment_transaction_id == order_id).order_by(Refund.created_at, Refund.id)
        )
    )


@dataclass(frozen=True)
class OrderRefunds:
    """An order's refunds as its person sees them (SPEC 15: the order shows what was refunded): the
    ones made, oldest first, and what is still being refunded (XorPay's outcome not known yet). A
    refused refund changed nothing and is not shown."""

    made: list[Refund]
    pending: Decimal

    @classmethod
    def of(cls, refunds: list[Refund]) -> OrderRefunds:
        made = [r for r in refunds if r.status is RefundStatus.SUCCEEDED]
        pending = sum((r.amount for r in refunds if r.status is RefundStatus.PENDING), Decimal(0))
        return cls(made, pending)

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.made), Decimal(0))

    def __bool__(self) -> bool:
        return bool(self.made or self.pending)


def order_refunds(session: Session, order: PaymentTransaction) -> OrderRefunds:
    """What the person is told of `order`'s refunds (nothing for an order that was never paid)."""
    if order.status != PaymentStatus.SUCCEEDED:
        return OrderRefunds([], Decimal(0))
    return OrderRefunds.of(refunds_of(session, order.id))


@dataclass(frozen=True)
class Refundable:
    """How much of a paid order can be refunded now, and what limits it (SPEC 15, 20): what is not
    refunded yet, what is left of the money the order paid for (its lot: gift money never goes back
    as cash), and what the person has available."""

    unrefunded: Decimal
    unspent: Decimal
    available: Decimal

    @property
    def amount(self) -> Decimal:
        return max(min(self.unrefunded, self.unspent, self.available), Decimal(0))

    @property
    def spent(self) -> Decimal:
        """What the person spent of the order's own money (less is refundable by as much)."""
        return max(self.unrefunded - self.unspent, Decimal(0))


def refundable_of(session: Session, order: PaymentTransaction, money: Funds) -> Refundable:
    """What `order` allows refunding now, the person's money being `money`."""
    refunded = session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_transaction_id == order.id, Refund.status == RefundStatus.SUCCEEDED
        )
    )
    lot = order_lot(session, order.id)
    unspent = lot.remaining - lot.reserved if lot is not None else Decimal(0)
    return Refundable(order.amount - Decimal(refunded), unspent, money.available)


def refundable_now(session: Session, order: PaymentTransaction, now: datetime) -> Refundable | None:
    """What the admin's order page says can be refunded (None for an order that was never paid)."""
    if order.status is not PaymentStatus.SUCCEEDED:
        return None
    return refundable_of(session, order, funds(session, order.user_id, now))


def _checked(session: Session, order: PaymentTransaction, value: Decimal, money: Funds) -> RefundPlan:
    """What the books allow: a succeeded order, no refund pending, fewer than 50, within what is
    refundable: not beyond what is not refunded yet, what is left of the order's own money, and
    what the person has available."""
    if order.status is not PaymentStatus.SUCCEEDED:
        raise RefundRefused(N_("Only a paid order can be refunded."), field="amount")
    rows = session.execute(
        select(Refund.status, func.count()).where(Refund.payment_transaction_id == order.id).group_by(Refund.status)
    ).all()
    counts = dict(rows)
    if RefundStatus.PENDING in counts:
        raise RefundRefused(N_("A refund of this order is pending: resolve it first."), field="amount")
    if sum(counts.values()) >= MAX_PER_ORDER:
        raise RefundRefused(N_("This order has had %(max)d refunds, the most XorPay allows."), max=MAX_PER_ORDER)
    can = refundable_of(session, order, money)
    if value > can.unrefunded:
        raise RefundRefused(
            N_("At most ¥%(refundable)s of this order can be refunded."), field="amount", refundable=can.amount
        )
    if value > can.unspent:  # SPEC 20: only the order's own paid money goes back, never a gift
        raise RefundRefused(
            N_(
                "At most ¥%(refundable)s of this order can be refunded: ¥%(spent)s of the money it paid"
                " for has been spent."
            ),
            field="amount",
            refundable=can.amount,
            spent=can.spent,
        )
    if value > money.available:
        raise RefundRefused(
            N_("The person has only ¥%(available)s available."), field="amount", available=money.available
        )
    return RefundPlan(order, value, can.amount, money.balance, money.available)


def _note_unknown(session: Session, refund_id: uuid.UUID, admin: Context, error: GatewayError) -> None:
    with atomic(session):
        refund = lock(session, Refund, Refund.id == refund_id)
        assert refund is not None
        refund.gateway_answer = _answer(error)
        details = admin.admin_details("gateway", refund_id=str(refund.id), gateway_status=error.gateway_status)
        record_audit(session, "refund.unknown", ctx=admin, user_id=refund.user_id, details=details)


def _reload(session: Session, refund_id: uuid.UUID) -> Refund:
    refund = session.get(Refund, refund_id, populate_existing=True)
    assert refund is not None
    return refund


def _answer(error: GatewayError) -> dict[str, str | None]:
    return {"status": error.gateway_status, "detail": error.detail}
