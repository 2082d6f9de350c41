"""XorPay's notify (SPEC 7): verified over the raw fields, matched to its order exactly (amount, aoid),
then settled by the same code as every other proof of payment (payments.settlement.settle), once.

A notify that is not XorPay's, or not for this order, is refused with a 4xx (XorPay retries) and
counted per source and minute (a signed one also audited); it credits nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import timedelta

from limits import parse_many
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ledger import metrics
from ledger.db import atomic, lock
from ledger.errors import InvalidNotify, TooManyNotifyRefusals, UnknownOrder
from ledger.models import NotifyRefusal, PaymentTransaction
from ledger.money import to_api
from ledger.services.audit import record_audit, refusal
from ledger.services.context import Context
from ledger.services.payments.settlement import settle
from ledger.services.payments.xorpay import Notify, loggable, parse_notify


def handle_notify(
    session: Session,
    ctx: Context,
    fields: Mapping[str, str],
    *,
    source: str | None = None,
) -> bool:
    """Process a XorPay notify. True if it credited the order, False for a harmless repeat.

    Checks the sign in constant time over the raw fields, finds and locks the order by order_id,
    requires pay_price to equal the stored amount exactly and aoid to equal the recorded one, then
    credits the stored amount once. A forged, incomplete or mismatched notify raises InvalidNotify
    (400); an unknown order raises UnknownOrder (404). Neither credits anything. Every refusal is
    counted per `source` (the client address), reason and minute; past RATELIMIT_WEBHOOK_REFUSALS
    from one source, TooManyNotifyRefusals (429) is raised and nothing more is written. A notify
    XorPay signed that is still refused (unknown order, mismatch) is also audited on its own.
    """
    try:
        return _handle(session, fields, ctx=ctx)
    except (InvalidNotify, UnknownOrder) as refused:
        audited = refused.audit_row.details if refused.audit_row else {}
        reason = str(refused.details.get("reason") or audited.get("reason") or refused.code)
        metrics.WEBHOOK_REFUSALS.labels(reason).inc()
        _count_refusal(session, ctx, source, reason, fields, ctx.config.RATELIMIT_WEBHOOK_REFUSALS)
        raise


def source_of(address: str | None) -> str:
    """What refusals are counted by: an IPv4 address, an IPv6 address's /64 (one subscriber holds a
    whole /64, so counting single IPv6 addresses would limit nothing), else the text cut to 64."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return (address or "unknown")[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _count_refusal(
    session: Session, ctx: Context, address: str | None, reason: str, fields: Mapping[str, str], limit: str
) -> None:
    """Add one to the source's count of refusals for this minute, unless the source is past any of
    its limits (then TooManyNotifyRefusals, and nothing written). Fixed windows of whole minutes."""
    source = source_of(address)
    now = ctx.now()
    minute = now.replace(second=0, microsecond=0)
    with atomic(session):
        for rate in parse_many(limit):  # "60/minute;1000/day": every part holds
            since = minute - timedelta(seconds=rate.get_expiry()) + timedelta(minutes=1)
            recent = session.scalar(
                select(func.coalesce(func.sum(NotifyRefusal.count), 0)).where(
                    NotifyRefusal.source == source, NotifyRefusal.minute >= since
                )
            )
            if recent >= rate.amount:
                metrics.WEBHOOK_REFUSALS.labels("rate_limited").inc()
                raise TooManyNotifyRefusals()
        sample = loggable(fields)
        session.execute(
            insert(NotifyRefusal)
            .values(minute=minute, source=source, reason=reason, count=1, last_at=now, sample=sample)
            .on_conflict_do_update(
                index_elements=["minute", "source", "reason"],
                set_={"count": NotifyRefusal.count + 1, "last_at": now, "sample": sample},
            )
        )


def forget_old_refusals(session: Session, *, days: int = 30) -> int:
    """Delete the counts of refused notifies older than `days` (the daily job): they serve the
    limit and the overview's last 24 hours, and a month of them for a look back."""
    with atomic(session):
        gone = session.execute(delete(NotifyRefusal).where(NotifyRefusal.minute < func.now() - timedelta(days=days)))
    return gone.rowcount


def _handle(session: Session, fields: Mapping[str, str], *, ctx: Context) -> bool:
    with atomic(session):
        notify = parse_notify(fields, ctx.config.XORPAY_APP_SECRET)  # not XorPay's: counted, not audited a row each
        order = lock(session, PaymentTransaction, PaymentTransaction.id == notify.order_id) if notify.order_id else None
        if order is None:
            raise _notify_refusal(UnknownOrder(), "unknown_order", notify, ctx)
        if notify.pay_price != order.amount:
            raise _notify_refusal(
                InvalidNotify("amount mismatch"),
                "amount_mismatch",
                notify,
                ctx,
                order,
                expected=to_api(order.amount),
            )
        if order.provider_order_id is not None and notify.aoid != order.provider_order_id:
            raise _notify_refusal(
                InvalidNotify("aoid mismatch"),
                "aoid_mismatch",
                notify,
                ctx,
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
        credited = settle(session, order, ctx=ctx, evidence=evidence)
        if order.provider_order_id is None:
            order.provider_order_id = notify.aoid
        if not credited:
            record_audit(
                session,
                "payment.notify_repeated",
                ctx=ctx,
                user_id=order.user_id,
                details={"transaction_id": str(order.id)},
            )
    return credited


def _notify_refusal(
    error: InvalidNotify | UnknownOrder,
    reason: str,
    notify: Notify,
    ctx: Context,
    order: PaymentTransaction | None = None,
    **details: str,
) -> InvalidNotify | UnknownOrder:
    return refusal(
        error,
        "payment.notify_refused",
        ctx=ctx,
        user_id=order.user_id if order else None,
        details={"reason": reason, **details, **notify.logged},
    )
