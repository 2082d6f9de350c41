"""Top-ups: orders at XorPay, the notify that credits them, and reconciliation by query2.

Every path that learns an order was paid (webhook, "check now", `payments reconcile`) ends in
`_settle`, under the order's row lock: the order is credited once, with the amount we stored, in
the transaction that marks it succeeded. No transaction is held open across a call to XorPay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger import validation
from ledger.config import Settings
from ledger.db import atomic, lock
from ledger.errors import InvalidNotify, InvalidTopupAmount, NotFound, UnknownOrder
from ledger.i18n import N_
from ledger.models import LedgerKind, PaymentStatus, PaymentTransaction, User
from ledger.money import InvalidAmount, parse_amount, to_api
from ledger.services.audit import SYSTEM, XORPAY, Origin, record_audit, refusal
from ledger.services.billing import credit
from ledger.services.invites import lock_first_topup_reward, pay_first_topup_reward
from ledger.services.xorpay import PAID_STATUSES, GatewayError, Notify, XorPayClient, loggable, parse_notify

PAY_TYPE = "alipay"
ORDER_EXPIRE_SECONDS = 30 * 60
# How long reconcile keeps asking about expired or failed orders (XorPay retries a notify for ~6.5 h).
RECHECK_WINDOW = timedelta(hours=48)


def parse_topup_amount(raw: object, settings: Settings) -> Decimal:
    """A top-up amount: an exact decimal string with at most 2 places within TOPUP_MIN..TOPUP_MAX."""
    if not isinstance(raw, str):  # a JSON number: refused, saying that money is a string
        return parse_amount(raw, places=2, error=InvalidTopupAmount)
    try:
        amount: Decimal | None = parse_amount(raw, places=2)
    except InvalidAmount:
        amount = None
    if amount is None or not settings.TOPUP_MIN <= amount <= settings.TOPUP_MAX:
        # The range and the two decimals: all a person typing an amount needs to hear.
        raise InvalidTopupAmount(field="amount", minimum=settings.TOPUP_MIN, maximum=settings.TOPUP_MAX)
    return amount


def _lock_order(session: Session, order_id: uuid.UUID) -> PaymentTransaction:
    order = lock(session, PaymentTransaction, PaymentTransaction.id == order_id)
    assert order is not None, f"order {order_id} vanished"  # orders are never deleted
    return order


def create_topup(
    session: Session,
    gateway: XorPayClient,
    *,
    settings: Settings,
    user: User,
    amount: object,
    origin: Origin,
    now: datetime | None = None,
) -> PaymentTransaction:
    """Open a top-up order of `amount` (an exact string) and ask XorPay for its Alipay QR code.

    Raises InvalidTopupAmount (422 invalid_amount). Writes the pending order (and an audit row)
    first, then calls XorPay with no transaction open, then stores the aoid and QR. If XorPay says
    no, the order is marked failed, audited, and GatewayError is raised: nothing is credited.
    """
    amount = parse_topup_amount(amount, settings)
    now = now or datetime.now(UTC)
    with atomic(session):
        order = PaymentTransaction(
            id=uuid.uuid4(),
            user_id=user.id,
            amount=amount,
            pay_type=PAY_TYPE,
            status=PaymentStatus.PENDING,
            expires_at=now + timedelta(seconds=ORDER_EXPIRE_SECONDS),
            meta={},
        )
        session.add(order)
        record_audit(
            session,
            "payment.created",
            origin=origin,
            user_id=user.id,
            details={"transaction_id": str(order.id), "amount": to_api(amount)},
        )
    try:
        created = gateway.create(
            name=f"Ledger 余额充值 ¥{amount:.2f}",
            pay_type=PAY_TYPE,
            price=f"{amount:.2f}",
            order_id=str(order.id),
            notify_url=settings.XORPAY_NOTIFY_URL,
            expire=ORDER_EXPIRE_SECONDS,
            order_uid=user.email,
        )
    except GatewayError as exc:
        _mark_refused(session, order.id, exc, origin)
        raise
    with atomic(session):
        order = _lock_order(session, order.id)
        order.provider_order_id = created.aoid
        # XorPay's window, counted from its answer: our expiry is never before the gateway's.
        order.expires_at = datetime.now(UTC) + timedelta(seconds=created.expires_in)
        order.meta = {**order.meta, "qr": created.qr, "aoid": created.aoid, "expires_in": created.expires_in}
    return order


def _mark_refused(session: Session, order_id: uuid.UUID, exc: GatewayError, origin: Origin) -> None:
    """XorPay would not create the order: it is failed (nothing can be paid on it), and audited."""
    with atomic(session):
        order = _lock_order(session, order_id)
        if order.status == PaymentStatus.PENDING:
            order.move_to(PaymentStatus.FAILED)
            order.meta = {**order.meta, "error": {"status": exc.gateway_status, "detail": exc.detail}}
        record_audit(
            session,
            "payment.create_failed",
            origin=origin,
            user_id=order.user_id,
            details={"transaction_id": str(order.id), "gateway_status": exc.gateway_status, "detail": exc.detail},
        )


def get_own_order(session: Session, *, user_id: uuid.UUID, transaction_id: object) -> PaymentTransaction:
    """One of the person's own orders; NotFound for a malformed or unknown id or another person's order."""
    missing = NotFound(N_("There is no such top-up order."))
    order_id = validation.uuid_of(transaction_id, "transaction_id", error=missing)
    order = session.scalar(
        select(PaymentTransaction).where(PaymentTransaction.id == order_id, PaymentTransaction.user_id == user_id)
    )
    if order is None:
        raise missing
    return order


def list_orders(session: Session, *, user_id: uuid.UUID, limit: int = 20) -> list[PaymentTransaction]:
    return list(
        session.scalars(
            select(PaymentTransaction)
            .where(PaymentTransaction.user_id == user_id)
            .order_by(PaymentTransaction.created_at.desc(), PaymentTransaction.id)
            .limit(limit)
        )
    )


def _settle(
    session: Session, order: PaymentTransaction, *, settings: Settings, origin: Origin, evidence: dict[str, Any]
) -> bool:
    """Mark a locked, paid order succeeded and credit its stored amount. False if it already was.

    The person's first succeeded top-up also pays their invitation reward (when the reward policy
    says so), in this same transaction: once, whichever of this and the reward API comes first.
    """
    if order.status == PaymentStatus.SUCCEEDED:
        return False
    reward = lock_first_topup_reward(session, order, settings)
    order.move_to(PaymentStatus.SUCCEEDED)
    order.paid_at = datetime.now(UTC)
    order.meta = {**order.meta, **evidence}
    credit(
        session,
        user_id=order.user_id,
        amount=order.amount,
        kind=LedgerKind.TOPUP,
        origin=origin,
        action="payment.succeeded",
        payment_transaction=order,
        details={
            "transaction_id": str(order.id),
            "aoid": order.provider_order_id,
            "source": evidence.get("confirmed_by"),
        },
    )
    if reward is not None:
        pay_first_topup_reward(session, reward, settings=settings, origin=origin)
    return True


def handle_notify(session: Session, fields: Mapping[str, str], *, settings: Settings, origin: Origin = XORPAY) -> bool:
    """Process a XorPay notify. True if it credited the order, False for a harmless repeat.

    Checks the sign in constant time over the raw fields, finds and locks the order by order_id,
    requires pay_price to equal the stored amount exactly and aoid to equal the recorded one, then
    credits the stored amount once. A forged, incomplete or mismatched notify raises InvalidNotify
    (400); an unknown order raises UnknownOrder (404). Neither credits anything; both are audited.
    """
    with atomic(session):
        try:
            notify = parse_notify(fields, settings.XORPAY_APP_SECRET)
        except InvalidNotify as exc:
            raise refusal(
                exc, "payment.notify_refused", origin=origin, details={**exc.details, **loggable(fields)}
            ) from None
        order = lock(session, PaymentTransaction, PaymentTransaction.id == notify.order_id) if notify.order_id else None
        if order is None:
            raise _notify_refusal(UnknownOrder(), "unknown_order", notify, origin)
        if notify.pay_price != order.amount:
            raise _notify_refusal(
                InvalidNotify("amount mismatch"),
                "amount_mismatch",
                notify,
                origin,
                order,
                expected=to_api(order.amount),
            )
        if order.provider_order_id is not None and notify.aoid != order.provider_order_id:
            raise _notify_refusal(
                InvalidNotify("aoid mismatch"),
                "aoid_mismatch",
                notify,
                origin,
                order,
                expected=order.provider_order_id,
            )
        evidence = {
            "confirmed_by": "notify",
            "aoid": notify.aoid,
            "pay_time": notify.pay_time,
            "detail": notify.detail,
            "notify": notify.logged,
        }
        credited = _settle(session, order, settings=settings, origin=origin, evidence=evidence)
        if order.provider_order_id is None:
            order.provider_order_id = notify.aoid
        if not credited:
            record_audit(
                session,
                "payment.notify_repeated",
                origin=origin,
                user_id=order.user_id,
                details={"transaction_id": str(order.id)},
            )
    return credited


def _notify_refusal(
    error: InvalidNotify | UnknownOrder,
    reason: str,
    notify: Notify,
    origin: Origin,
    order: PaymentTransaction | None = None,
    **details: str,
) -> InvalidNotify | UnknownOrder:
    return refusal(
        error,
        "payment.notify_refused",
        origin=origin,
        user_id=order.user_id if order else None,
        details={"reason": reason, **details, **notify.logged},
    )


def check_payment(
    session: Session,
    gateway: XorPayClient,
    *,
    settings: Settings,
    user_id: uuid.UUID,
    transaction_id: object,
    origin: Origin,
) -> PaymentTransaction:
    """ "I have paid, check now": ask XorPay (query2) about the person's own order and credit it if paid.

    Raises NotFound, or GatewayError when XorPay cannot be asked.
    """
    order = get_own_order(session, user_id=user_id, transaction_id=transaction_id)
    if order.status == PaymentStatus.SUCCEEDED:
        return order
    session.commit()  # no transaction stays open while XorPay answers
    status = gateway.query2(str(order.id))
    order, _outcome = _apply_query(session, order.id, status, settings=settings, origin=origin, now=datetime.now(UTC))
    return order


def _apply_query(
    session: Session, order_id: uuid.UUID, status: str, *, settings: Settings, origin: Origin, now: datetime
) -> tuple[PaymentTransaction, str | None]:
    """Act on a query2 answer under the order's lock: paid -> credit, stale -> expired.

    Returns the order and what changed ("credited", "expired" or None).
    """
    outcome = None
    with atomic(session):
        order = _lock_order(session, order_id)
        if status in PAID_STATUSES:
            evidence = {"confirmed_by": "query2", "query2_status": status}
            if _settle(session, order, settings=settings, origin=origin, evidence=evidence):
                outcome = "credited"
        elif order.status == PaymentStatus.PENDING and (
            status == "expire" or (now >= order.expires_at and status in {"new", "not_exist"})
        ):
            order.move_to(PaymentStatus.EXPIRED)
            outcome = "expired"
            record_audit(
                session,
                "payment.expired",
                origin=origin,
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
    gateway: XorPayClient,
    *,
    settings: Settings,
    now: datetime | None = None,
    progress: Callable[[uuid.UUID, str], None] | None = None,
) -> ReconcileReport:
    """Ask XorPay about every pending order: credit the paid ones, expire the stale ones.

    Orders that expired or failed in the last RECHECK_WINDOW are asked about again (failed ones
    only if XorPay knows them): a payment made at the edge of the window whose notify was lost
    still ends in a credit. Safe beside incoming notifies: both settle under the order's row
    lock, so an order is credited once whichever comes first.
    """
    now = now or datetime.now(UTC)
    report = ReconcileReport()
    recent = PaymentTransaction.created_at >= now - RECHECK_WINDOW
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
        _order, outcome = _apply_query(session, order_id, status, settings=settings, origin=SYSTEM, now=now)
        report.credited += outcome == "credited"
        report.expired += outcome == "expired"
        if progress:
            progress(order_id, f"{status}{f' -> {outcome}' if outcome else ''}")
    return report
