"""Top-up orders: created at XorPay (with the QR code to pay), a person's own orders, receipts
and CSV, and the back office's look-ups. How an order becomes paid is payments.settlement; no
transaction is held open across a call to XorPay.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import validation
from ledger.db import atomic, get_by_id, lock
from ledger.errors import NotFound, TooManyPendingOrders
from ledger.i18n import N_
from ledger.models import AuditLog, PaymentStatus, PaymentTransaction, PayType, User
from ledger.money import to_api
from ledger.services.audit import record_audit
from ledger.services.context import Context
from ledger.services.payments.methods import parse_pay_type, parse_topup_amount
from ledger.services.payments.xorpay import GatewayError, XorPayClient

ORDER_EXPIRE_SECONDS = 30 * 60


def lock_order(session: Session, order_id: uuid.UUID) -> PaymentTransaction:
    order = lock(session, PaymentTransaction, PaymentTransaction.id == order_id)
    assert order is not None, f"order {order_id} vanished"  # orders are never deleted
    return order


def create_topup(
    session: Session,
    gateway: XorPayClient,
    *,
    user: User,
    amount: object,
    ctx: Context,
    pay_type: object = PayType.ALIPAY.value,
) -> PaymentTransaction:
    """Open a top-up order of `amount` (an exact string) paid with `pay_type` (`alipay`, or `native`:
    WeChat Pay) and ask XorPay for its QR code. Raises InvalidRequest (an unknown method),
    InvalidTopupAmount (422 invalid_amount, also above the method's limit) or TooManyPendingOrders
    (429: TOPUP_MAX_PENDING unpaid orders still open) before writing. Writes the
    pending order and an audit row, calls XorPay with no transaction open, then stores the aoid and QR;
    if XorPay says no, the order is marked failed and audited, GatewayError is raised, nothing credited."""
    settings = ctx.config
    method = parse_pay_type(pay_type)
    amount = parse_topup_amount(amount, settings, method)
    now = ctx.now()
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
            ctx=ctx,
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
        _mark_refused(session, order.id, exc, ctx)
        raise
    with atomic(session):
        order = lock_order(session, order.id)
        order.provider_order_id = created.aoid
        # XorPay's window, counted from its answer: our expiry is never before the gateway's.
        order.expires_at = ctx.now() + timedelta(seconds=created.expires_in)
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


def _mark_refused(session: Session, order_id: uuid.UUID, exc: GatewayError, ctx: Context) -> None:
    """XorPay would not create the order: it is failed (nothing can be paid on it), and audited."""
    with atomic(session):
        order = lock_order(session, order_id)
        if order.status == PaymentStatus.PENDING:
            order.move_to(PaymentStatus.FAILED)
            order.meta = {**order.meta, "error": {"status": exc.gateway_status, "detail": exc.detail}}
        record_audit(
            session,
            "payment.create_failed",
            ctx=ctx,
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


# --- the back office --------------------------------------------------------------------------------


def order_by_id(session: Session, transaction_id: object) -> PaymentTransaction:
    """Any person's order (the back office); NotFound for a malformed or unknown id."""
    missing = NotFound(N_("There is no such top-up order."))
    return get_by_id(session, PaymentTransaction, transaction_id, "transaction_id", missing)


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
