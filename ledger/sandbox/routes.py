"""The sandbox's routes: XorPay's API (create, query2, query, refund), the buyer's pay page, and a
page for developers listing the orders, with switches that make the next refund time out or the
next notify get lost, so that every path of a refund and of a lost notify can be shown."""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for

from ledger.extensions import csrf
from ledger.sandbox.store import FILENAME, SWITCHES, SandboxOrder, SandboxStore
from ledger.services.payments.xorpay import sign

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox/xorpay", template_folder="templates")

CREATE_FIELDS = ("name", "pay_type", "price", "order_id", "notify_url", "sign")
PRICE = re.compile(r"\d{1,7}\.\d{2}", re.ASCII)  # XorPay's price: a string with 2 decimals, "50.00"
PRICE_HINT = "price must be a positive amount with 2 decimals, like 50.00"
DEFAULT_EXPIRE = 7200
# What one payment may be at most on each channel through XorPay; above it the channel refuses.
CHANNEL_LIMITS = {"alipay": Decimal("1000.00"), "native": Decimal("20000.00")}
CHANNEL_ERRORS = {"alipay": "alipay_api_error", "native": "wechat_api_error"}
BEIJING = ZoneInfo("Asia/Shanghai")


def store() -> SandboxStore:
    """This app's sandbox store: a file in the instance folder, shared with every other process."""
    extensions = current_app.extensions
    if "ledger.sandbox" not in extensions:
        extensions["ledger.sandbox"] = SandboxStore(Path(current_app.instance_path) / FILENAME)
    return extensions["ledger.sandbox"]


def secret() -> str:
    return current_app.config["LEDGER"].XORPAY_APP_SECRET


def received(*names: str) -> dict[str, str]:
    """The request's fields from the body or, when the body lacks one, the query string: XorPay's
    official Node demo POSTs them in the URL with an empty body, and XorPay takes that."""
    return {name: request.form.get(name) or request.args.get(name) or "" for name in names}


def signed(given: str, *values: str) -> bool:
    return hmac.compare_digest(sign(*values, secret()).encode(), given.lower().encode())


def price_of(raw: str) -> Decimal | None:
    """A price as XorPay takes it ("50.00"), or None."""
    return Decimal(raw) if PRICE.fullmatch(raw) and Decimal(raw) > 0 else None


def answer(status: str, **extra: Any) -> Any:
    return jsonify(status=status, **extra)


# --- XorPay's API ---------------------------------------------------------------------------------


@bp.post("/api/pay/<aid>")
@csrf.exempt
def create(aid: str) -> Any:
    form = received(*CREATE_FIELDS, "more", "expire")
    if any(not form[k] for k in CREATE_FIELDS):
        return answer("missing_argument")
    if aid != current_app.config["LEDGER"].XORPAY_AID:
        return answer("aid_not_exist")
    if not signed(form["sign"], form["name"], form["pay_type"], form["price"], form["order_id"], form["notify_url"]):
        return answer("sign_error")
    if form["pay_type"] not in CHANNEL_LIMITS:
        return answer("pay_type_error")
    price = price_of(form["price"])
    if price is None:  # XorPay's create has no price error; fee_error would say the merchant's fee balance is short
        return answer("missing_argument", info=PRICE_HINT)
    if price > CHANNEL_LIMITS[form["pay_type"]]:
        limit = CHANNEL_LIMITS[form["pay_type"]]
        return answer(CHANNEL_ERRORS[form["pay_type"]], info=f"single payment limit {limit:.2f} exceeded")
    expire = int(form["expire"]) if form["expire"].isascii() and form["expire"].isdigit() else DEFAULT_EXPIRE
    status, order = store().create(form, max(expire, 1))
    if order is None:
        return answer(status)
    # The QR code opens the sandbox's pay page (XorPay's is https://qr.alipay.com/... or weixin://...).
    qr = url_for("sandbox.pay_page", aoid=order.aoid, _external=True)
    return answer("ok", aoid=order.aoid, expires_in=str(order.expires_in), info={"qr": qr})  # a string, as XorPay


@bp.get("/api/query2/<aid>")
def query2(aid: str) -> Any:
    form = received("order_id", "sign")
    if aid != current_app.config["LEDGER"].XORPAY_AID:
        return answer("aid_not_exist")
    if not signed(form["sign"], form["order_id"]):
        return answer("sign_error")
    order = store().by_order_id(form["order_id"])
    return answer(order.status if order else "not_exist")


@bp.get("/api/query/<aoid>")
def query(aoid: str) -> Any:
    order = store().by_aoid(aoid)
    return answer(order.status if order else "not_exist")


@bp.post("/api/refund/<aoid>")
@csrf.exempt
def refund(aoid: str) -> Any:
    """XorPay's refund: ok, order_error (unknown, unpaid, or only `payed`: the notify was never
    acknowledged), price_error (malformed, or more than is left), sign_error. With the refund switch
    on, the refund is made but the answer comes only after the client has stopped waiting."""
    form = received("price", "sign")
    if not signed(form["sign"], form["price"]):
        return answer("sign_error")
    price = price_of(form["price"])
    if price is None:
        return answer("price_error", info=PRICE_HINT)
    times_out = store().take_switch("refund") == "timeout"
    status = store().refund(aoid, price, answer="timeout" if times_out else "ok")
    if times_out:
        time.sleep(_beyond_client_timeout())
    return answer(status)


def _beyond_client_timeout() -> float:
    """Long enough that this app's XorPay client has given up waiting (its read timeout, plus a second)."""
    timeout = getattr(current_app.extensions.get("ledger.xorpay"), "timeout", (3.05, 10))
    read = timeout[1] if isinstance(timeout, tuple) else timeout
    return min(float(read) + 1.0, 60.0)


# --- the buyer's pay page -----------------------------------------------------------------------


@bp.get("/pay/<aoid>")
def pay_page(aoid: str) -> Any:
    order = store().by_aoid(aoid) or abort(404)
    return render_template("sandbox/pay.html", order=order, status=order.status)


@bp.post("/pay/<aoid>")
def pay(aoid: str) -> Any:
    """The buyer pays: the order becomes `payed`, then the shop is notified over real HTTP, signed;
    its 200 makes the order `success`. With the notify switch on, the notify is lost."""
    before, order = store().mark_payed(aoid)
    if order is None:
        abort(404)
    if before != "new":  # expired, or paid already: nothing to pay
        return render_template("sandbox/pay.html", order=order, status=order.status), 409
    if store().take_switch("notify") == "lost":
        outcome, acknowledged = "not sent: the notify switch was on (a lost notify)", False
    else:
        outcome, acknowledged = _notify(order)
    order = store().record_notify(aoid, outcome, acknowledged=acknowledged)
    return render_template("sandbox/done.html", order=order, outcome=outcome, acknowledged=acknowledged)


def _notify(order: SandboxOrder) -> tuple[str, bool]:
    """POST the signed notify to the shop, as XorPay does; the outcome and whether it was a 200."""
    wechat = order.pay_type == "native"
    fields = {
        "aoid": order.aoid,
        "order_id": order.order_id,
        "pay_price": order.price,
        "pay_time": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "more": order.more,
        "detail": json.dumps(
            {
                "transaction_id": ("4200" if wechat else "2026") + uuid.uuid4().hex[:24],
                "bank_type": "CFT" if wechat else "ALIPAY",
                "buyer": "o-sandbox-buyer-openid" if wechat else "sandbox-buyer@alipay",
            }
        ),
    }
    fields["sign"] = sign(fields["aoid"], fields["order_id"], fields["pay_price"], fields["pay_time"], secret())
    try:
        response = requests.post(order.notify_url, data=fields, timeout=10)
    except requests.RequestException as exc:
        return f"not delivered: {exc.__class__.__name__}", False
    return f"HTTP {response.status_code} {response.text[:60]}", response.status_code == 200


# --- for developers: the orders, and the switches ------------------------------------------------


@bp.get("/")
def index() -> Any:
    return render_template("sandbox/index.html", orders=store().recent(), switches=store().switches())


@bp.post("/switches")
def switches() -> Any:
    """Set (or clear) what the next refund and the next notify do instead of the usual."""
    for name, values in SWITCHES.items():
        if name in request.form:  # a checkbox after its hidden "": the last value is the one chosen
            value = request.form.getlist(name)[-1]
            store().set_switch(name, value if value in values else "")
    return redirect(url_for("sandbox.index"))
