from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
from flask import Blueprint, abort, current_app, jsonify, render_template, request

from ledger.extensions import csrf
from ledger.services.xorpay import sign

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox/xorpay", template_folder="templates")

CREATE_FIELDS = ("name", "pay_type", "price", "order_id", "notify_url", "sign")
PRICE = re.compile(r"\d{1,7}\.\d{2}", re.ASCII)
BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass
class SandboxOrder:
    aoid: str
    order_id: str
    name: str
    pay_type: str
    price: str
    notify_url: str
    more: str
    expires_at: datetime
    status: str = "new"  # new, payed (notify not yet acknowledged), success, expire
    refunded: list[str] = field(default_factory=list)
    notifies: list[str] = field(default_factory=list)


class SandboxStore:
    """The sandbox's orders, in memory: the development server is one process with threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_order_id: dict[str, SandboxOrder] = {}
        self.by_aoid: dict[str, SandboxOrder] = {}

    def status(self, order: SandboxOrder) -> str:
        if order.status == "new" and datetime.now(UTC) >= order.expires_at:
            order.status = "expire"
        return order.status


def store() -> SandboxStore:
    return current_app.extensions.setdefault("ledger.sandbox", SandboxStore())


def secret() -> str:
    return current_app.config["LEDGER"].XORPAY_APP_SECRET


def answer(status: str, **extra: Any) -> Any:
    return jsonify(status=status, **extra)


@bp.post("/api/pay/<aid>")
@csrf.exempt
def create(aid: str) -> Any:
    form = request.form
    if any(not form.get(k) for k in CREATE_FIELDS):
        return answer("missing_argument")
    if aid != current_app.config["LEDGER"].XORPAY_AID:
        return answer("aid_not_exist")
    expected = sign(form["name"], form["pay_type"], form["price"], form["order_id"], form["notify_url"], secret())
    if form["sign"] != expected:
        return answer("sign_error")
    if form["pay_type"] not in ("alipay", "native"):
        return answer("pay_type_error")
    if not PRICE.fullmatch(form["price"]) or float(form["price"]) <= 0:
        return answer("fee_error")
    expire = int(form.get("expire") or 7200)
    sandbox = store()
    with sandbox.lock:
        existing = sandbox.by_order_id.get(form["order_id"])
        if existing is not None:
            status = sandbox.status(existing)
            if status in ("payed", "success"):
                return answer("order_payed")
            if status == "expire":
                return answer("order_expire")
            if (existing.name, existing.price, existing.pay_type, existing.notify_url) != (
                form["name"],
                form["price"],
                form["pay_type"],
                form["notify_url"],
            ):
                return answer("order_exist")
            order = existing
        else:
            order = SandboxOrder(
                aoid=uuid.uuid4().hex,
                order_id=form["order_id"],
                name=form["name"],
                pay_type=form["pay_type"],
                price=form["price"],
                notify_url=form["notify_url"],
                more=form.get("more", ""),
                expires_at=datetime.now(UTC) + timedelta(seconds=expire),
            )
            sandbox.by_order_id[order.order_id] = order
            sandbox.by_aoid[order.aoid] = order
    remaining = max(int((order.expires_at - datetime.now(UTC)).total_seconds()), 1)
    # Like XorPay, expires_in sometimes comes as a string.
    qr = request.host_url.rstrip("/") + bp.url_prefix + f"/pay/{order.aoid}"
    return answer("ok", aoid=order.aoid, expires_in=str(remaining), info={"qr": qr})


@bp.get("/api/query2/<aid>")
def query2(aid: str) -> Any:
    order_id = request.args.get("order_id", "")
    if aid != current_app.config["LEDGER"].XORPAY_AID:
        return answer("aid_not_exist")
    if request.args.get("sign") != sign(order_id, secret()):
        return answer("sign_error")
    sandbox = store()
    with sandbox.lock:
        order = sandbox.by_order_id.get(order_id)
        return answer(sandbox.status(order) if order else "not_exist")


@bp.get("/api/query/<aoid>")
def query(aoid: str) -> Any:
    sandbox = store()
    with sandbox.lock:
        order = sandbox.by_aoid.get(aoid)
        return answer(sandbox.status(order) if order else "not_exist")


@bp.post("/api/refund/<aoid>")
@csrf.exempt
def refund(aoid: str) -> Any:
    price = request.form.get("price", "")
    if request.form.get("sign") != sign(price, secret()):
        return answer("sign_error")
    sandbox = store()
    with sandbox.lock:
        order = sandbox.by_aoid.get(aoid)
        if order is None or sandbox.status(order) != "success" or len(order.refunded) >= 50:
            return answer("order_error")
        already = sum(float(p) for p in order.refunded)
        if not PRICE.fullmatch(price) or float(price) + already > float(order.price) + 1e-9:
            return answer("price_error")
        order.refunded.append(price)
    return answer("ok")


def _order_or_404(sandbox: SandboxStore, aoid: str) -> SandboxOrder:
    order = sandbox.by_aoid.get(aoid)
    if order is None:
        abort(404)
    return order


@bp.get("/pay/<aoid>")
def pay_page(aoid: str) -> Any:
    sandbox = store()
    with sandbox.lock:
        order = _order_or_404(sandbox, aoid)
        status = sandbox.status(order)
    return render_template("sandbox/pay.html", order=order, status=status)


@bp.post("/pay/<aoid>")
def pay(aoid: str) -> Any:
    """The person pays: mark the order paid, then notify the shop over real HTTP, signed."""
    sandbox = store()
    with sandbox.lock:
        order = _order_or_404(sandbox, aoid)
        status = sandbox.status(order)
        if status != "new":  # expired, or paid already: nothing to pay
            return render_template("sandbox/pay.html", order=order, status=status), 409
        order.status = "payed"
    fields = {
        "aoid": order.aoid,
        "order_id": order.order_id,
        "pay_price": order.price,
        "pay_time": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "more": order.more,
        "detail": json.dumps(
            {"transaction_id": "2026" + uuid.uuid4().hex[:24], "bank_type": "ALIPAY", "buyer": "sandbox-buyer@alipay"}
        ),
    }
    fields["sign"] = sign(fields["aoid"], fields["order_id"], fields["pay_price"], fields["pay_time"], secret())
    try:
        response = requests.post(order.notify_url, data=fields, timeout=10)
        outcome = f"HTTP {response.status_code} {response.text[:60]}"
        acknowledged = response.status_code == 200
    except requests.RequestException as exc:
        outcome, acknowledged = f"not delivered: {exc.__class__.__name__}", False
    with sandbox.lock:
        order.notifies.append(outcome)
        if acknowledged:
            order.status = "success"
    return render_template("sandbox/done.html", order=order, outcome=outcome, acknowledged=acknowledged)
