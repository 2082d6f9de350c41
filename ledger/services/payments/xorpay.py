"""XorPay's protocol (SPEC 7): signs, and an HTTP client for create, query2 and refund.

Every sign is the lowercase hex MD5 of the plain concatenation of the values (UTF-8, no
separators) followed by the app secret. The client has timeouts and knows nothing of the database:
callers never hold a transaction open while it waits on the network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from ledger.errors import InvalidNotify, InvalidRequest, LedgerError
from ledger.i18n import N_
from ledger.money import parse_amount
from ledger.validation import is_storable_json, storable_text

NOTIFY_FIELDS = ("aoid", "order_id", "pay_price", "pay_time", "sign")
# query2 answers that mean the money was paid ("fee_error": paid, but XorPay could not take its fee).
PAID_STATUSES = frozenset({"payed", "success", "fee_error"})
ORDER_STATUSES = PAID_STATUSES | {"not_exist", "new", "expire"}
TIMEOUT = (3.05, 10)  # seconds: connect, read

# What the person paying is told for each XorPay error status.
GATEWAY_MESSAGES: dict[str, str] = {
    "missing_argument": N_("The payment request was incomplete. Please try again."),
    "sign_error": N_("The payment service rejected our signature. Please contact support."),
    "aid_not_exist": N_("Payments are not configured correctly. Please contact support."),
    "app_off": N_("Payments are unavailable right now. Please try again later."),
    "pay_type_error": N_("This payment method is not available."),
    "order_payed": N_("This order has already been paid."),
    "order_expire": N_("This order has expired. Please start a new top-up."),
    "order_exist": N_("This order already exists with other details. Please start a new top-up."),
    "fee_error": N_("The payment service cannot accept payments right now. Please try again later."),
    "no_alipay_contract": N_("Alipay is not enabled for this shop yet. Please contact support."),
    "alipay_api_error": N_("Alipay could not create the payment. Please try again later."),
    "wechat_api_error": N_("The payment channel refused the order. Please try again later."),
    "timeout": N_("The payment service did not answer in time. Please try again."),
    "unreachable": N_("The payment service cannot be reached. Please try again later."),
    "bad_response": N_("The payment service gave an answer we could not read. Please try again."),
}
DEFAULT_GATEWAY_MESSAGE = N_("The payment service refused the order. Please try again later.")


class GatewayError(LedgerError):
    """XorPay said no, did not answer in time, or answered something unreadable."""

    code, status = "gateway_error", 502

    def __init__(self, gateway_status: str, detail: str | None = None) -> None:
        super().__init__(GATEWAY_MESSAGES.get(gateway_status, DEFAULT_GATEWAY_MESSAGE), gateway_status=gateway_status)
        self.gateway_status = storable_text(gateway_status, 64)
        self.detail = storable_text(detail, 500) if detail else None  # the gateway's words, kept in JSONB


@dataclass(frozen=True)
class Notify:
    """A notify whose sign is verified: the signed values, typed. `order_id` is None when it is not
    one of our ids (then no order can match it)."""

    aoid: str
    order_id: uuid.UUID | None
    pay_price: Decimal | None  # None: not an exact amount (it can match no order)
    pay_time: str
    detail: Any  # unsigned, informative only
    logged: dict[str, str]  # what is kept of the fields: storable text, cut short


def loggable(fields: Mapping[str, str]) -> dict[str, str]:
    """What we keep of a notify's fields, signed or not: storable whatever a forger sends (NUL, bad Unicode)."""
    return {k: storable_text(str(fields.get(k, "")), 200) for k in (*NOTIFY_FIELDS, "more", "detail") if k != "sign"}


def parse_notify(fields: Mapping[str, str], app_secret: str) -> Notify:
    """Verify a notify's sign over the raw received strings and type its values.

    Raises InvalidNotify (details: `reason` missing_fields or bad_sign) when it is not XorPay's.
    """
    raw = {k: str(fields.get(k, "")) for k in (*NOTIFY_FIELDS, "more", "detail")}
    missing = [k for k in NOTIFY_FIELDS if not raw[k]]
    if missing:
        raise InvalidNotify("missing %(fields)s", reason="missing_fields", fields=", ".join(missing))
    if not verify_notify_sign(raw, app_secret):
        raise InvalidNotify("sign error", reason="bad_sign")
    try:
        order_id: uuid.UUID | None = uuid.UUID(raw["order_id"])
    except ValueError:
        order_id = None
    try:
        pay_price: Decimal | None = parse_amount(raw["pay_price"], places=2)  # exact, as SPEC 19 asks
    except InvalidRequest:
        pay_price = None
    logged = loggable(raw)
    return Notify(logged["aoid"][:64], order_id, pay_price, logged["pay_time"], _detail_of(raw["detail"]), logged)


def _detail_of(raw: str) -> Any:
    """The notify's `detail` (unsigned, informative only): its JSON when storable, else its text."""
    if not raw:
        return None
    try:
        value = json.loads(raw[:4000])
    except (ValueError, RecursionError):
        value = None
    return value if value is not None and is_storable_json(value) else storable_text(raw, 500)


def sign(*values: str) -> str:
    """XorPay's sign: md5 of the values concatenated as they are sent."""
    return hashlib.md5("".join(values).encode("utf-8")).hexdigest()  # noqa: S324 - XorPay's protocol


def notify_sign(fields: Mapping[str, str], app_secret: str) -> str:
    return sign(fields["aoid"], fields["order_id"], fields["pay_price"], fields["pay_time"], app_secret)


def verify_notify_sign(fields: Mapping[str, str], app_secret: str) -> bool:
    """Check a notify's sign over the raw received strings, in constant time."""
    expected = notify_sign(fields, app_secret).encode()
    return hmac.compare_digest(expected, fields.get("sign", "").lower().encode())


@dataclass(frozen=True)
class CreatedOrder:
    aoid: str
    qr: str
    expires_in: int


class XorPayClient:
    def __init__(
        self,
        api_base: str,
        aid: str,
        app_secret: str,
        *,
        timeout: tuple[float, float] = TIMEOUT,
        http: requests.Session | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.aid = aid
        self.app_secret = app_secret
        self.timeout = timeout
        self.http = http or requests.Session()

    def create(
        self,
        *,
        name: str,
        pay_type: str,
        price: str,
        order_id: str,
        notify_url: str,
        expire: int,
        order_uid: str | None = None,
        more: str | None = None,
    ) -> CreatedOrder:
        """Create a payment order; return its aoid and the QR text. Raises GatewayError."""
        form = {
            "name": name,
            "pay_type": pay_type,
            "price": price,
            "order_id": order_id,
            "notify_url": notify_url,
            "expire": str(expire),
            "sign": sign(name, pay_type, price, order_id, notify_url, self.app_secret),
        }
        if order_uid:
            form["order_uid"] = order_uid
        if more:
            form["more"] = more
        answer = self._call("POST", f"/api/pay/{self.aid}", data=form)
        status = answer.get("status")
        if status != "ok":
            raise GatewayError(str(status or "bad_response"), detail=_detail(answer))
        info = answer.get("info")
        qr = info.get("qr") if isinstance(info, dict) else None
        aoid = answer.get("aoid")
        # XorPay's docs call it expire_in, its answers expires_in (sometimes a string): read both.
        raw_expires = answer.get("expires_in", answer.get("expire_in", expire))
        try:
            expires_in = int(raw_expires)
        except (TypeError, ValueError):
            expires_in = -1
        if not isinstance(qr, str) or not qr or not isinstance(aoid, str) or not aoid or expires_in <= 0:
            raise GatewayError("bad_response", detail=f"incomplete answer: {str(answer)[:200]}")
        return CreatedOrder(aoid=aoid, qr=qr, expires_in=expires_in)

    def query2(self, order_id: str) -> str:
        """The status of our order at XorPay: not_exist, new, payed, fee_error, success or expire."""
        answer = self._call(
            "GET", f"/api/query2/{self.aid}", params={"order_id": order_id, "sign": sign(order_id, self.app_secret)}
        )
        status = answer.get("status")
        if not isinstance(status, str) or not status:
            raise GatewayError("bad_response", detail=str(answer)[:200])
        if status not in ORDER_STATUSES:  # sign_error, aid_not_exist...: an answer about us, not the order
            raise GatewayError(status, detail=_detail(answer))
        return status

    def refund(self, aoid: str, price: str) -> None:
        """Refund `price` of a paid order. Raises GatewayError (order_error, price_error...)."""
        answer = self._call("POST", f"/api/refund/{aoid}", data={"price": price, "sign": sign(price, self.app_secret)})
        if answer.get("status") != "ok":
            raise GatewayError(str(answer.get("status") or "bad_response"), detail=_detail(answer))

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, self.api_base + path, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise GatewayError("timeout") from None
        except requests.RequestException as exc:
            raise GatewayError("unreachable", detail=str(exc)[:200]) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise GatewayError("bad_response", detail=f"HTTP {response.status_code}: {response.text[:200]}")
        return answer


def _detail(answer: dict[str, Any]) -> str | None:
    info = answer.get("info")
    return str(info)[:500] if info else None
