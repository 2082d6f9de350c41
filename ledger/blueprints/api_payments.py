"""`POST /api/payments/create`, `GET /api/payments/<id>` (the signed-in person) and the XorPay webhook."""

from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.extensions import csrf
from ledger.models import PaymentTransaction
from ledger.money import to_api
from ledger.services.errors import InvalidNotify, UnknownOrder
from ledger.services.invites import Rewards
from ledger.services.payments import create_topup, get_own_order, handle_notify, parse_topup_amount
from ledger.web import gateway, iso, json_object, qr_svg, request_origin, settings

bp = Blueprint("api_payments", __name__, url_prefix="/api/payments")


def order_json(order: PaymentTransaction) -> dict[str, Any]:
    return {
        "transaction_id": str(order.id),
        "status": order.status,
        "amount": to_api(order.amount),
        "provider_order_id": order.provider_order_id,
        "created_at": iso(order.created_at),
        "paid_at": iso(order.paid_at),
        "expires_at": iso(order.expires_at),
    }


@bp.post("/create")
@login_required
def create() -> Any:
    config = settings()
    amount = parse_topup_amount(json_object().get("amount"), config.TOPUP_MIN, config.TOPUP_MAX)
    order = create_topup(
        get_session(),
        gateway(),
        user=current_user,
        amount=amount,
        notify_url=config.XORPAY_NOTIFY_URL,
        origin=request_origin(),
    )
    qr = order.meta["qr"]
    return jsonify(
        transaction_id=str(order.id),
        status=order.status,
        amount=to_api(order.amount),
        qr=qr,
        qr_svg=str(qr_svg(qr)),
        expires_at=iso(order.expires_at),
    ), 201


@bp.get("/<uuid:transaction_id>")  # so that GET /create is a 405, not an order lookup
@login_required
def show(transaction_id: str) -> Any:
    order = get_own_order(get_session(), user_id=current_user.id, transaction_id=transaction_id)
    return jsonify(order_json(order))


@bp.post("/webhook")
@csrf.exempt
def webhook() -> Any:
    """XorPay's notify. Any 200 means "processed" to XorPay, so every refusal is a 4xx (it retries)."""
    try:
        handle_notify(
            get_session(),
            request.form,
            app_secret=settings().XORPAY_APP_SECRET,
            origin=request_origin("xorpay"),
            invite_rewards=Rewards.on_first_topup(settings()),
        )
    except (InvalidNotify, UnknownOrder) as exc:
        return exc.message, exc.status, {"Content-Type": "text/plain; charset=utf-8"}
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}
