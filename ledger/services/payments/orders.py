"""Top-ups: orders at XorPay, the notify that credits them, and reconciliation by query2.

Every path that learns an order was paid (webhook, "check now", `payments reconcile`) ends in
`_settle`, under the order's row lock: the order is credited once, with the amount we stored, in
the transaction that marks it succeeded. No transaction is held open across a call to XorPay.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import metrics, validation
from ledger.config import Settings
from ledger.db import atomic, lock
from ledger.errors import InvalidRequest, NotFound, TooManyPendingOrders
from ledger.i18n import N_
from ledger.models import AuditLog, EventType, LedgerKind, PaymentStatus, PaymentTransaction, PayType, User
from ledger.money import to_api
from ledger.services.audit import SYSTEM, Origin, record_audit
from ledger.services.books.accounts import credit
from ledger.services.events import emit_change
from ledger.services.growth.invites import lock_first_topup_reward, pay_first_topup_reward
from ledger.services.payments.methods import parse_pay_type, parse_topup_amount
from ledger.services.payments.xorpay import PAID_STATUSES, GatewayError, XorPayClient

ORDER_EXPIRE_SECONDS = 30 * 60
# How long reconcile keeps asking about expired or failed orders (XorPay retries a notify for ~6.5 h).
RECHECK_WINDOW = timedelta(hours=48)


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
    pay_type: object = PayType.ALIPAY.value,
    now: datetime | None = None,
) -> PaymentTransaction:
    """Open a top-up order of `amount` (an exact string) paid with `pay_type` (`alipay`, or `native`:
    WeChat Pay) and ask XorPay for its QR code. Raises InvalidRequest (an unknown method),
    InvalidTopupAmount (422 invalid_amount, also above the method's limit) or TooManyPendingOrders
    (429: TOPUP_MAX_PENDING unpaid orders still open) before writing. Writes the
    pending order and an audit row, calls XorPay with no transaction open, then stores the aoid and QR;
    if XorPay says no, the order is marked failed and audited, GatewayError is raised, nothing credited."""
    method = parse_pay_type(pay_type)
    amount = parse_topup_amount(amount, settings, method)
    now = now or datetime.now(UTC)
    with atomic(session):
        _refuse_past_pending_limit(session, user.id, settings.TOPUP_MAX_PENDING, now)
        order = PaymentTransaction(
            id=uuid.uuid4(),
            user_id=user.id,
            amount=amount,
            pay_type=method,
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
            details={"transaction_id": str(order.id), "amount": to_api(amount), "pay_type": method.value},
        )
    try:
        created = gateway.create(
            name=f"{settings.SITE_NAME} 余额充值 ¥{amount:.2f}",  # on the payer's screen and bill
            pay_type=method.value,
            price=f"{amount:.2f}",
            order_id=str(order.id),
            notify_url=settings.XORPAY_NOTIFY_URL,
            expire=ORDER_EXPIRE_SECONDS,
            order_uid=str(user.id),  # who paid, without personal data leaving us (SPEC 19)
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


def _refuse_past_pending_limit(session: Session, user_id: uuid.UUID, most: int, now: datetime) -> None:
    """At most `most` unpaid orders still open (SPEC 19). The person's row is locked (FOR NO KEY
    UPDATE: their charges, which only reference it, go on) so that parallel requests count in turn."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    open_orders = session.scalar(
        select(func.count()).where(
            PaymentTransaction.user_id == user_id,
            PaymentTransaction.status == PaymentStatus.PENDING,
            PaymentTransaction.expires_at > now,
        )
    )
    if open_orders >= most:
        raise TooManyPendingOrders(count=open_orders, minutes=ORDER_EXPIRE_SECONDS // 60)


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


def own_receipt(session: Session, *, user_id: uuid.UUID, transaction_id: object) -> PaymentTransaction:
    """One of the person's own paid orders, for its receipt. NotFound for an order not paid (pending,
    expired, failed), another person's order, or an unknown or malformed id."""
    order = get_own_order(session, user_id=user_id, transaction_id=transaction_id)
    if order.status != PaymentStatus.SUCCEEDED:
        raise NotFound(N_("There is no receipt for this order: only a paid top-up has one."))
    return order


TOPUP_CSV_COLUMNS = ("created_at", "transaction_id", "amount", "pay_type", "status", "paid_at", "provider_order_id")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # as the usage CSV (SPEC 8): not read as a formula


def topups_csv_filename(today: date) -> str:
    return f"topups_{today:%Y%m%d}.csv"


def topups_csv(session: Session, *, user_id: uuid.UUID, tz: ZoneInfo) -> bytes:
    """Every top-up order of the person, oldest first, as a CSV like the usage CSV of SPEC 8: UTF-8
    with a BOM (Excel), a header row, CRLF, times in `tz` to the second, amounts as the API writes
    them, the API's names for method and status; a cell that starts like a formula gets a '.
    Built in memory: a person's orders are few (TOPUP_MAX_PENDING, RATELIMIT_TOPUP)."""

    def local(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if moment else ""

    def cell(text: str | None) -> str:
        return "'" + text if text and text.startswith(FORMULA_STARTS) else text or ""

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(TOPUP_CSV_COLUMNS)
    orders = session.scalars(
        select(PaymentTransaction)
        .where(PaymentTransaction.user_id == user_id)
        .order_by(PaymentTransaction.created_at, PaymentTransaction.id)
    )
    for order in orders:
        writer.writerow(
            [
                local(order.created_at),
                str(order.id),
                to_api(order.amount),
                str(order.pay_type),
                order.status.value,
                local(order.paid_at),
                cell(order.provider_order_id),
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def settle(
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
    emit_change(session, EventType.TOPUP_SUCCEEDED, user_id=order.user_id, transaction_id=order.id, amount=order.amount)
    metrics.count_on_commit(session, metrics.TOPUPS.labels(str(evidence.get("confirmed_by"))).inc)
    metrics.count_on_commit(session, partial(metrics.TOPUP_YUAN.inc, float(order.amount)))
    if reward is not None:
        pay_first_topup_reward(session, reward, order, settings=settings, origin=origin)
    return True


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
    return ask_xorpay(
        session,
        gateway,
        get_own_order(session, user_id=user_id, transaction_id=transaction_id),
        settings=settings,
        origin=origin,
    )


def ask_xorpay(
    session: Session, gateway: XorPayClient, order: PaymentTransaction, *, settings: Settings, origin: Origin
) -> PaymentTransaction:
    """Ask XorPay (query2) about an order and act on the answer: paid -> credited (as a notify
    would), stale -> expired. For "check now", and for an admin's "check with XorPay"."""
    if order.status == PaymentStatus.SUCCEEDED:
        return order
    session.commit()  # no transaction stays open while XorPay answers
    status = gateway.query2(str(order.id))
    order, _outcome = _apply_query(session, order.id, status, settings=settings, origin=origin, now=datetime.now(UTC))
    return order


# --- the back office --------------------------------------------------------------------------------


def order_by_id(session: Session, transaction_id: object) -> PaymentTransaction:
    """Any person's order (the back office); NotFound for a malformed or unknown id."""
    missing = NotFound(N_("There is no such top-up order."))
    order = session.get(PaymentTransaction, validation.uuid_of(transaction_id, "transaction_id", error=missing))
    if order is None:
        raise missing
    return order


def find_orders(
    session: Session,
    *,
    status: object = None,
    pay_type: object = None,
    user_ids: list[uuid.UUID] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    size: int = 25,
) -> tuple[list[PaymentTransaction], int]:
    """Orders newest first, filtered by status, method, people, and a [since, until) range; and how many match."""
    wanted = select(PaymentTransaction)
    if status in tuple(PaymentStatus):
        wanted = wanted.where(PaymentTransaction.status == status)
    if pay_type in tuple(PayType):
        wanted = wanted.where(PaymentTransaction.pay_type == pay_type)
    if user_ids is not None:
        wanted = wanted.where(PaymentTransaction.user_id.in_(user_ids))
    if since:
        wanted = wanted.where(PaymentTransaction.created_at >= since)
    if until:
        wanted = wanted.where(PaymentTransaction.created_at < until)
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    newest = wanted.order_by(PaymentTransaction.created_at.desc(), PaymentTransaction.id)
    return list(session.scalars(newest.limit(size).offset((max(page, 1) - 1) * size))), total


def notify_history(session: Session, order: PaymentTransaction) -> list[AuditLog]:
    """What happened to an order, from the audit trail: created, notifies received or refused, checks."""
    mine = (AuditLog.details["transaction_id"].astext == str(order.id)) | (
        AuditLog.details["order_id"].astext == str(order.id)
    )
    people = (AuditLog.user_id == order.user_id) | AuditLog.user_id.is_(None)
    return list(
        session.scalars(select(AuditLog).where(people, AuditLog.action.like("payment.%"), mine).order_by(AuditLog.id))
    )


def mark_paid(
    session: Session,
    *,
    settings: Settings,
    transaction_id: object,
    trade_no: object,
    reason: str,
    origin: Origin,
    admin_details: dict[str, Any],
) -> PaymentTransaction:
    """补单: an admin who has the payment's proof (its Alipay or WeChat Pay trade number) credits the order's stored
    amount once, as a notify would (a later notify or reconcile changes nothing). Raises NotFound,
    InvalidRequest (no trade number, or the order is already paid)."""
    trade = validation.text(trade_no, "trade_no", max_length=64, message=N_("Give the payment's trade number."))
    wanted = order_by_id(session, transaction_id).id
    with atomic(session):
        order = _lock_order(session, wanted)
        if order.status == PaymentStatus.SUCCEEDED:
            raise InvalidRequest(N_("This order is already paid."), field="trade_no")
        evidence = {"confirmed_by": "admin", "trade_no": trade, "reason": reason}
        settle(session, order, settings=settings, origin=origin, evidence=evidence)
        record_audit(
            session,
            "payment.marked_paid",
            origin=origin,
            user_id=order.user_id,
            details={**admin_details, "transaction_id": str(order.id), "trade_no": trade},
        )
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
            if settle(session, order, settings=settings, origin=origin, evidence=evidence):
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
