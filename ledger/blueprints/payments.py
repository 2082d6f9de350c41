"""`/recharge`: top up with Alipay through XorPay, watch the order, check it, see past top-ups."""

from decimal import Decimal
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.services.billing import get_balance
from ledger.services.errors import InvalidTopupAmount
from ledger.services.invites import Rewards
from ledger.services.payments import check_payment, create_topup, get_own_order, list_orders, parse_topup_amount
from ledger.services.xorpay import GatewayError
from ledger.web import gateway, qr_svg, request_origin, settings

bp = Blueprint("payments", __name__)

PRESETS = (Decimal(10), Decimal(50), Decimal(100), Decimal(200))


def _page(status: int = 200, error: str | None = None, custom: str = "", preset: str = "50") -> Any:
    config = settings()
    return render_template(
        "payments/recharge.html",
        presets=PRESETS,
        orders=list_orders(get_session(), user_id=current_user.id),
        error=error,
        custom=custom,
        preset=preset,
        minimum=config.TOPUP_MIN,
        maximum=config.TOPUP_MAX,
    ), status


@bp.get("/recharge")
@login_required
def recharge() -> Any:
    return _page()


@bp.post("/recharge")
@login_required
def start() -> Any:
    config = settings()
    custom = request.form.get("custom_amount", "").strip()
    preset = request.form.get("amount", "")
    try:
        amount = parse_topup_amount(custom or preset, config.TOPUP_MIN, config.TOPUP_MAX)
    except InvalidTopupAmount:
        message = _(
            "Enter an amount from ¥%(min)s to ¥%(max)s with at most 2 decimals.",
            min=config.TOPUP_MIN,
            max=config.TOPUP_MAX,
        )
        return _page(422, message, custom, preset)
    try:
        order = create_topup(
            get_session(),
            gateway(),
            user=current_user,
            amount=amount,
            notify_url=config.XORPAY_NOTIFY_URL,
            origin=request_origin(),
        )
    except GatewayError as exc:
        return _page(502, _(exc.message), custom, preset)
    return redirect(url_for("payments.order", transaction_id=order.id))


@bp.get("/recharge/<transaction_id>")
@login_required
def order(transaction_id: str) -> Any:
    session = get_session()
    topup = get_own_order(session, user_id=current_user.id, transaction_id=transaction_id)
    qr = topup.meta.get("qr")
    return render_template(
        "payments/order.html",
        order=topup,
        qr=qr,
        qr_svg=qr_svg(qr) if qr and topup.status == "pending" else None,
        balance=get_balance(session, current_user.id),
    )


@bp.post("/recharge/<transaction_id>/check")
@login_required
def check(transaction_id: str) -> Any:
    try:
        topup = check_payment(
            get_session(),
            gateway(),
            user_id=current_user.id,
            transaction_id=transaction_id,
            origin=request_origin(),
            invite_rewards=Rewards.on_first_topup(settings()),
        )
    except GatewayError as exc:
        flash(_(exc.message), "danger")
    else:
        if topup.status == "succeeded":
            flash(_("Payment received. Your balance has been topped up."), "success")
        elif topup.status == "expired":
            flash(_("This order has expired. Please start a new top-up."), "warning")
        else:
            flash(_("No payment has arrived yet. If you have just paid, wait a few seconds and check again."), "info")
    return redirect(url_for("payments.order", transaction_id=transaction_id))
