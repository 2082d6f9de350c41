"""Top-ups: orders at XorPay, the notify that credits them, and reconciliation by query2.

Every path that learns an order was paid (webhook, "check now", `payments reconcile`) ends in
`_settle`, under the order's row lock: the order is credited once, with the amount we stored, in
the transaction that marks it succeeded. No transaction is held open across a call to XorPay.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.db import atomic, is_storable_json, storable_text
from ledger.models import PaymentTransaction, User
from ledger.money import InvalidAmount, format_amount, parse_amount, to_api
from ledger.services.audit import Origin, record_audit
from ledger.services.billing import credit
from ledger.services.errors import InvalidNotify, InvalidTopupAmount, LedgerError, NotFound, UnknownOrder
from ledger.services.invites import Rewards, lock_first_topup_reward, pay_first_topup_reward
from ledger.services.xorpay import NOTIFY_FIELDS, PAID_STATUSES, GatewayError, XorPayClient, verify_notify_sign

PAY_TYPE = "alipay"
ORDER_EXPIRE_SECONDS = 30 * 60
# How long reconcile keeps asking about expired or failed orders (XorPay retries a notify for ~6.5 h).
RECHECK_WINDOW = timedelta(hours=48)
XORPAY = Origin("xorpay")

# The status machine. A late payment that the gateway proves (signed notify or query2) still
# succeeds an expired or failed order: the person paid, so the money must arrive.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"succeeded", "failed", "expired"}),
    "expired": frozenset({"succeeded"}),
    "failed": frozenset({"succeeded"}),
    "succeeded": frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


def move(order: PaymentTransaction, status: str) -> None:
    """Change an order's status, refusing any move the machine does not allow."""
    if status not in TRANSITIONS.get(order.status, frozenset()):
        raise IllegalTransition(f"payment {order.id}: {order.status} -> {status} is not allowed")
    order.status = status


def parse_topup_amount(raw: object, minimum: Decimal, maximum: Decimal) -> Decimal:
    """A top-up amount: a decimal string with at most 2 places within [minimum, maximum]."""
    try:
        amount = parse_amount(raw, places=2)
    except InvalidAmount as exc:
        raise InvalidTopupAmount(str(exc)) from None
    if not minimum <= amount <= maximum:
        raise InvalidTopupAmount(
            f"amount must be between {format_amount(minimum)} and {format_amount(maximum)}",
            minimum=minimum,
            maximum=maximum,
        )
    return amount


def _lock_order(session: Session, order_id: uuid.UUID) -> PaymentTransaction | None:
    return session.scalars(
        select(PaymentTransaction)
        .where(PaymentTransaction.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def create_topup(
    session: Session,
    gateway: XorPayClient,
    *,
    user: User,
    amount: Decimal,
    notify_url: str,
    origin: Origin,
    now: datetime | None = None,
) -> PaymentTransaction:
    """Open a top-up order and ask XorPay for its Alipay QR code.

    Writes the pending order (and an audit row) first, then calls XorPay with no transaction open,
    then stores the aoid and QR. If XorPay says no, the order is marked failed, audited, and
    GatewayError is raised: nothing is credited.
    """
    now = now or datetime.now(UTC)
    with atomic(session):
        order = PaymentTransaction(
            id=uuid.uuid4(),
            user_id=user.id,
            amount=amount,
            pay_type=PAY_TYPE,
            status="pending",
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
            notify_url=notify_url,
            expire=ORDER_EXPIRE_SECONDS,
            order_uid=user.email,
        )
    except GatewayError as exc:
        with atomic(session):
            order = _lock_order(session, order.id)
            if order.status == "pending":
                move(order, "failed")
                order.meta = {**order.meta, "error": {"status": exc.gateway_status, "detail": exc.detail}}
            record_audit(
                session,
                "payment.create_failed",
                origin=origin,
                user_id=user.id,
                details={"transaction_id": str(order.id), "gateway_status": exc.gateway_status, "detail": exc.detail},
            )
        raise
    with atomic(session):
        order = _lock_order(session, order.id)
        order.provider_order_id = created.aoid
        # XorPay's window, counted from its answer: our expiry is never before the gateway's.
        order.expires_at = datetime.now(UTC) + timedelta(seconds=created.expires_in)
        order.meta = {**order.meta, "qr": created.qr, "aoid": created.aoid, "expires_in": created.expires_in}
    return order


def get_own_order(session: Session, *, user_id: uuid.UUID, transaction_id: object) -> PaymentTransaction:
    """One of the person's own orders; NotFound for an unknown id or another person's order."""
    try:
        order_id = uuid.UUID(str(transaction_id))
    except ValueError:
        raise NotFound("No such payment.") from None
    order = session.scalar(
        select(PaymentTransaction).where(PaymentTransaction.id == order_id, PaymentTransaction.user_id == user_id)
    )
    if order is None:
        raise NotFound("No such payment.")
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
    session: Session,
    order: PaymentTransaction,
    *,
    origin: Origin,
    evidence: dict[str, Any],
    invite_rewards: Rewards | None,
) -> bool:
    """Mark a locked, paid order succeeded and credit its stored amount. False if it already was.

    With `invite_rewards`, the person's first succeeded top-up also pays their invitation reward,
    in this same transaction (once, whichever of this and the reward API comes first).
    """
    if order.status == "succeeded":
        return False
    reward = lock_first_topup_reward(session, order) if invite_rewards else None
    move(order, "succeeded")
    order.paid_at = datetime.now(UTC)
    order.meta = {**order.meta, **evidence}
    credit(
        session,
        user_id=order.user_id,
        amount=order.amount,
        kind="topup",
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
        pay_first_topup_reward(session, reward, rewards=invite_rewards, origin=origin)
    return True


def _refuse(
    session: Session,
    exc: LedgerError,
    *,
    action: str,
    origin: Origin,
    user_id: uuid.UUID | None,
    details: dict[str, Any],
) -> LedgerError:
    """Commit an audit row of a refused notify, and hand back the error to raise."""
    with atomic(session):
        record_audit(session, action, origin=origin, user_id=user_id, details=details)
    return exc


def handle_notify(
    session: Session,
    fields: Mapping[str, str],
    *,
    app_secret: str,
    origin: Origin,
    invite_rewards: Rewards | None = None,
) -> bool:
    """Process a XorPay notify. True if it credited the order, False for a harmless repeat.

    Checks the sign in constant time over the raw fields, finds and locks the order by order_id,
    requires pay_price to equal the stored amount, then credits the stored amount once. A forged,
    incomplete or mismatched notify is audited and raises InvalidNotify (400); an unknown order
    raises UnknownOrder (404). Neither credits anything.
    """
    raw = {k: fields.get(k, "") for k in (*NOTIFY_FIELDS, "more", "detail")}
    # What we keep of unverified fields must be storable whatever a forger sends (NUL, bad Unicode).
    logged = {k: storable_text(v, 200) for k, v in raw.items() if k != "sign"}
    missing = [k for k in NOTIFY_FIELDS if not raw[k]]
    if missing:
        raise _refuse(
            session,
            InvalidNotify(f"missing {', '.join(missing)}"),
            action="payment.notify_refused",
            origin=origin,
            user_id=None,
            details={"reason": "missing_fields", "missing": missing, **logged},
        )
    if not verify_notify_sign(raw, app_secret):
        raise _refuse(
            session,
            InvalidNotify("sign error"),
            action="payment.notify_refused",
            origin=origin,
            user_id=None,
            details={"reason": "bad_sign", **logged},
        )
    try:
        order_id = uuid.UUID(raw["order_id"])
    except ValueError:
        order_id = None

    refusal: LedgerError | None = None
    with atomic(session):
        order = _lock_order(session, order_id) if order_id else None
        if order is None:
            refusal = UnknownOrder()
            record_audit(
                session,
                "payment.notify_refused",
                origin=origin,
                user_id=None,
                details={"reason": "unknown_order", **logged},
            )
            credited = False
        elif _price_of(raw["pay_price"]) != order.amount:
            refusal = InvalidNotify("amount mismatch")
            record_audit(
                session,
                "payment.notify_refused",
                origin=origin,
                user_id=order.user_id,
                details={"reason": "amount_mismatch", "expected": to_api(order.amount), **logged},
            )
            credited = False
        else:
            credited = _settle(
                session,
                order,
                origin=origin,
                evidence={
                    "confirmed_by": "notify",
                    "aoid": logged["aoid"],
                    "pay_time": logged["pay_time"],
                    "detail": _detail_of(raw["detail"]),
                    "notify": logged,
                },
                invite_rewards=invite_rewards,
            )
            if order.provider_order_id is None:
                order.provider_order_id = logged["aoid"][:64]
            if not credited:
                record_audit(
                    session,
                    "payment.notify_repeated",
                    origin=origin,
                    user_id=order.user_id,
                    details={"transaction_id": str(order.id)},
                )
    if refusal is not None:
        raise refusal
    return credited


def check_payment(
    session: Session,
    gateway: XorPayClient,
    *,
    user_id: uuid.UUID,
    transaction_id: object,
    origin: Origin,
    invite_rewards: Rewards | None = None,
) -> PaymentTransaction:
    """ "I have paid, check now": ask XorPay (query2) about the person's own order and credit it if paid.

    Raises NotFound, or GatewayError when XorPay cannot be asked.
    """
    order = get_own_order(session, user_id=user_id, transaction_id=transaction_id)
    if order.status == "succeeded":
        return order
    session.commit()  # no transaction stays open while XorPay answers
    status = gateway.query2(str(order.id))
    order, _outcome = _apply_query(
        session, order.id, status, origin=origin, now=datetime.now(UTC), invite_rewards=invite_rewards
    )
    return order


def _apply_query(
    session: Session,
    order_id: uuid.UUID,
    status: str,
    *,
    origin: Origin,
    now: datetime,
    invite_rewards: Rewards | None,
) -> tuple[PaymentTransaction, str | None]:
    """Act on a query2 answer under the order's lock: paid -> credit, stale -> expired.

    Returns the order and what changed ("credited", "expired" or None).
    """
    outcome = None
    with atomic(session):
        order = _lock_order(session, order_id)
        if status in PAID_STATUSES:
            evidence = {"confirmed_by": "query2", "query2_status": status}
            if _settle(session, order, origin=origin, evidence=evidence, invite_rewards=invite_rewards):
                outcome = "credited"
        elif order.status == "pending" and (
            status == "expire" or (now >= order.expires_at and status in {"new", "not_exist"})
        ):
            move(order, "expired")
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
    now: datetime | None = None,
    progress: Callable[[uuid.UUID, str], None] | None = None,
    invite_rewards: Rewards | None = None,
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
            (PaymentTransaction.status == "pending")
            | ((PaymentTransaction.status == "expired") & recent)
            | ((PaymentTransaction.status == "failed") & recent & PaymentTransaction.provider_order_id.is_not(None))
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
        _order, outcome = _apply_query(
            session, order_id, status, origin=Origin("system"), now=now, invite_rewards=invite_rewards
        )
        report.credited += outcome == "credited"
        report.expired += outcome == "expired"
        if progress:
            progress(order_id, f"{status}{f' -> {outcome}' if outcome else ''}")
    return report


def _price_of(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _detail_of(raw: str) -> Any:
    """The notify's `detail` (unsigned, informative only): its JSON when storable, else its text."""
    if not raw:
        return None
    try:
        value = json.loads(raw[:4000])
    except (ValueError, RecursionError):
        value = None
    return value if value is not None and is_storable_json(value) else storable_text(raw, 500)
