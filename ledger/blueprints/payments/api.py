"""`POST /api/payments/create`, `GET /api/payments/<id>` (the signed-in person) and the XorPay webhook."""

from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from ledger.db import get_session
from ledger.errors import InvalidTopupAmount, NotFound, TooManyPendingOrders
from ledger.extensions import csrf
from ledger.models import Actor, PayType
from ledger.services.payments.orders import create_topup, get_own_order
from ledger.services.payments.webhook import handle_notify
from ledger.services.payments.xorpay import GatewayError
from ledger.web import schemas
from ledger.web.context import gateway, request_context
from ledger.web.errors import HttpError, answers_errors_as_text
from ledger.web.limits import topup_creation
from ledger.web.openapi import contract
from ledger.web.parsing import json_body
from ledger.web.serialisers import order_json
from ledger.web.templating import qr_svg

bp = Blueprint("api_payments", __name__, url_prefix="/api/payments")


@bp.post("/create")
@login_required
@topup_creation
@contract(
    json=schemas.TopupBody,
    ok={201: schemas.NewOrder},
    refusals=(InvalidTopupAmount, TooManyPendingOrders, HttpError(429), GatewayError),
    auth="session",
    tag="payments",
)
def create() -> Any:
    """Start a top-up: a XorPay order and the QR code to pay it, with Alipay or WeChat Pay (`native`)."""
    body = json_body()
    order = create_topup(
        get_session(),
        gateway(),
        user=current_user,
        amount=body.get("amount"),
        pay_type=body.get("pay_type", PayType.ALIPAY.value),  # optional; when given, alipay or native
        ctx=request_context(),
    )
    qr = order.meta["qr"]
    return jsonify({**order_json(order), "qr": qr, "qr_svg": str(qr_svg(qr))}), 201


@bp.get("/<uuid:transaction_id>")  # so that GET /create is a 405, not an order lookup
@login_required
@contract(ok={200: schemas.Order}, refusals=(NotFound,), auth="session", tag="payments")
def show(transaction_id: str) -> Any:
    """One of the signed-in person's top-up orders."""
    return jsonify(order_json(get_own_order(get_session(), user_id=current_user.id, transaction_id=transaction_id)))


@bp.post("/webhook")
@csrf.exempt
@answers_errors_as_text
def webhook() -> Any:
    """XorPay's notify. Any 200 means "processed" to XorPay, so every refusal is a 4xx (it retries)."""
    handle_notify(
        get_session(),
        request_context(Actor.XORPAY),
        request.form,
        source=request.remote_addr,  # the client's address as PROXY_COUNT allows: refusals are counted by it
    )
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}
