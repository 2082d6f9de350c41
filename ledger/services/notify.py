"""XorPay's notify (SPEC 7): verified over the raw fields, matched to its order exactly (amount, aoid),
then settled by the same code as every other proof of payment (payments.settle), once.

A notify that is not XorPay's, or not for this order, is refused with a 4xx (XorPay retries) and
audited; it credits nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from ledger import metrics
from ledger.config import Settings
from ledger.db import atomic, lock
from ledger.errors import InvalidNotify, UnknownOrder
from ledger.models import PaymentTransaction
from ledger.money import to_api
from ledger.services.audit import XORPAY, Origin, record_audit, refusal
from ledger.services.payments import settle
from ledger.services.xorpay import Notify, loggable, parse_notify


def handle_notify(session: Session, fields: Mapping[str, str], *, settings: Settings, origin: Origin = XORPAY) -> bool:
    """Process a XorPay notify. True if it credited the order, False for a harmless repeat.

    Checks the sign in constant time over the raw fields, finds and locks the order by order_id,
    requires pay_price to equal the stored amount exactly and aoid to equal the recorded one, then
    credits the stored amount once. A forged, incomplete or mismatched notify raises InvalidNotify
    (400); an unknown order raises UnknownOrder (404). Neither credits anything; both are audited.
    """
    try:
        return _handle(session, fields, settings=settings, origin=origin)
    except (InvalidNotify, UnknownOrder) as refused:
        reason = refused.audit_row.details.get("reason") if refused.audit_row else None
        metrics.WEBHOOK_REFUSALS.labels(reason or refused.code).inc()
        raise


def _handle(session: Session, fields: Mapping[str, str], *, settings: Settings, origin: Origin) -> bool:
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
        credited = settle(session, order, settings=settings, origin=origin, evidence=evidence)
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
