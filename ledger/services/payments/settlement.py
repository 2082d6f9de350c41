"""How a top-up order becomes paid (or expires): every path that learns an order was paid (the
webhook, "check now", an admin's "check with XorPay" or 补单, `payments reconcile`) ends in `settle`,
under the order's row lock: the order is credited once, with the amount we stored, in the
transaction that marks it succeeded. No transaction is held open across a call to XorPay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import metrics, validation
from ledger.db import atomic
from ledger.errors import InvalidRequest
from ledger.i18n import N_
from ledger.models import EventType, LedgerKind, PaymentStatus, PaymentTransaction
from ledger.services.audit import record_audit
from ledger.services.books.accounts import credit
from ledger.services.context import Context, reason_of
from ledger.services.events import emit_change
from ledger.services.growth.invites import lock_first_topup_reward, pay_first_topup_reward
from ledger.services.payments.orders import get_own_order, lock_order, order_by_id
from ledger.services.payments.xorpay import PAID_STATUSES, GatewayError, XorPayClient

# How long reconcile keeps asking about expired or failed orders (XorPay retries a notify for ~6.5 h).
RECHECK_WINDOW = timedelta(hours=48)


def settle(session: Session, order: PaymentTransaction, *, ctx: Context, evidence: dict[str, Any]) -> bool:
    """Mark a locked, paid order succeeded and credit its stored amount. False if it already was.

    The person's first succeeded top-up also pays their invitation reward (when the reward policy
    says so), in this same transaction: once, whichever of this and the reward API comes first.
    """
    if order.status == PaymentStatus.SUCCEEDED:
        return False
    reward = lock_first_topup_reward(session, order, ctx)
    order.move_to(PaymentStatus.SUCCEEDED)
    order.paid_at = ctx.now()
    order.meta = {**order.meta, **evidence}
    credit(
        session,
        user_id=order.user_id,
        amount=order.amount,
        kind=LedgerKind.TOPUP,
        ctx=ctx,
        action="payment.succeeded",
        payment_transaction=order,
        details={
            "transaction_id": str(order.id),
            "aoid": order.provider_order_id,
            "source": evidence.get("confirmed_by"),
        },
    )
    emit_change(session, EventType.TOPUP_SUCCEEDED, user_id=order.user_id, transaction_id=order.id, amount=order.amount)
    metrics.count_on_commit(session, metrics.TOPUPS.labels(str(evidence.get("confirmed_by"))).inc)
    metrics.count_on_commit(session, partial(metrics.TOPUP_YUAN.inc, float(order.amount)))
    if reward is not None:
        pay_first_topup_reward(session, reward, order, ctx=ctx)
    return True


def check_payment(
    session: Session,
    gateway: XorPayClient,
    *,
    user_id: uuid.UUID,
    transaction_id: object,
    ctx: Context,
) -> PaymentTransaction:
    """ "I have paid, check now": ask XorPay (query2) about the person's own order and credit it if paid.

    Raises NotFound, or GatewayError when XorPay cannot be asked.
    """
    return ask_xorpay(
        session,
        gateway,
        get_own_order(session, user_id=user_id, transaction_id=transaction_id),
        ctx=ctx,
    )


def ask_xorpay(
    session: Session, gateway: XorPayClient, order: PaymentTransaction, *, ctx: Context
) -> PaymentTransaction:
    """Ask XorPay (query2) about an order and act on the answer: paid -> credited (as a notify
    would), stale -> expired. For "check now", and for an admin's "check with XorPay"."""
    if order.status == PaymentStatus.SUCCEEDED:
        return order
    session.commit()  # no transaction stays open while XorPay answers
    status = gateway.query2(str(order.id))
    order, _outcome = _apply_query(session, order.id, status, ctx=ctx)
    return order


def mark_paid(
    session: Session, admin: Context, transaction_id: object, *, trade_no: object, reason: object
) -> PaymentTransaction:
    """补单: an admin who has the payment's proof (its Alipay or WeChat Pay trade number) credits the order's stored
    amount once, as a notify would (a later notify or reconcile changes nothing). Raises NotFound,
    InvalidRequest (no reason, no trade number, or the order is already paid)."""
    why = reason_of(reason)
    trade = validation.text(trade_no, "trade_no", max_length=64, message=N_("Give the payment's trade number."))
    wanted = order_by_id(session, transaction_id).id
    with atomic(session):
        order = lock_order(session, wanted)
        if order.status == PaymentStatus.SUCCEEDED:
            raise InvalidRequest(N_("This order is already paid."), field="trade_no")
        evidence = {"confirmed_by": "admin", "trade_no": trade, "reason": why}
        settle(session, order, ctx=admin, evidence=evidence)
        record_audit(
            session,
            "payment.marked_paid",
            ctx=admin,
            user_id=order.user_id,
            details=admin.admin_details(why, transaction_id=str(order.id), trade_no=trade),
        )
    return order


def _apply_query(
    session: Session, order_id: uuid.UUID, status: str, *, ctx: Context
) -> tuple[PaymentTransaction, str | None]:
    """Act on a query2 answer under the order's lock: paid -> credit, stale (at the context's time) -> expired.

    Returns the order and what changed ("credited", "expired" or None).
    """
    outcome = None
    with atomic(session):
        order = lock_order(session, order_id)
        if status in PAID_STATUSES:
            evidence = {"confirmed_by": "query2", "query2_status": status}
            if settle(session, order, ctx=ctx, evidence=evidence):
                outcome = "credited"
        elif order.status == PaymentStatus.PENDING and (
            status == "expire" or (ctx.now() >= order.expires_at and status in {"new", "not_exist"})
        ):
            order.move_to(PaymentStatus.EXPIRED)
            outcome = "expired"
            record_audit(
                session,
                "payment.expired",
                ctx=ctx,
                user_id=order.user_id,
                details={"transaction_id": str(order.id), "query2_status": status},
            )
    return order, outcome


@dataclass
class ReconcileReport:
    checked: int = 0
    credited: int = 0
    expired: int = 0
    errors: int = 0


def reconcile(
    session: Session,
    ctx: Context,
    gateway: XorPayClient,
    *,
    progress: Callable[[uuid.UUID, str], None] | None = None,
) -> ReconcileReport:
    """Ask XorPay about every pending order: credit the paid ones, expire the stale ones.

    Orders that expired or failed in the last RECHECK_WINDOW are asked about again (failed ones
    only if XorPay knows them): a payment made at the edge of the window whose notify was lost
    still ends in a credit. Safe beside incoming notifies: both settle under the order's row
    lock, so an order is credited once whichever comes first.
    """
    report = ReconcileReport()
    recent = PaymentTransaction.created_at >= ctx.now() - RECHECK_WINDOW
    pending = session.scalars(
        select(PaymentTransaction.id)
        .where(
            (PaymentTransaction.status == PaymentStatus.PENDING)
            | ((PaymentTransaction.status == PaymentStatus.EXPIRED) & recent)
            | (
                (PaymentTransaction.status == PaymentStatus.FAILED)
                & recent
                & PaymentTransaction.provider_order_id.is_not(None)
            )
        )
        .order_by(PaymentTransaction.created_at)
    ).all()
    session.commit()
    for order_id in pending:
        report.checked += 1
        try:
            status = gateway.query2(str(order_id))
        except GatewayError as exc:
            report.errors += 1
            if progress:
                progress(order_id, f"error ({exc.gateway_status})")
            continue
        _order, outcome = _apply_query(session, order_id, status, ctx=ctx)
        report.credited += outcome == "credited"
        report.expired += outcome == "expired"
        if progress:
            progress(order_id, f"{status}{f' -> {outcome}' if outcome else ''}")
    return report
