"""No input makes any route answer 5xx: every form, JSON, query and path field takes arbitrary text.

Every GET/POST route of `app.url_map` is either described in CASES below (who calls it, the kind of
body it takes, and its body, query and path fields, each with a valid baseline value) or listed in
EXCLUDED with a reason: a new route, path parameter or form field fails
`test_every_route_and_form_field_is_fuzzed_or_excluded` until it is described here.

Requests reach the view, not a guard in front of it: pages as a signed-in person with a valid CSRF
token (the sign-in pages as someone signed out), internal APIs with the internal token, the XorPay
webhook with a correct sign over whatever values are sent (unless the sign itself is fuzzed). Each
request runs in a savepoint rolled back after it, with fresh cookies and rate-limit counters, so no
request changes what the next one sees (a sign-out, a password change, a credited order). XorPay
is a stub that always says ok (a 502 gateway_error is a designed answer, not a crash), and
passwords are hashed with one PBKDF2 round instead of scrypt, for speed.

- test_sharp_values_never_5xx: deterministic. Each field in turn takes each value of a catalogue
  (NUL, lone surrogates, CR/LF, full-width digits, 10k characters, signs and exponents, bytes that
  are not UTF-8, JSON values that are not strings) while the other fields keep their baseline;
  then whole bodies of the wrong kind. It lists every distinct 5xx with the exception logged.
- test_arbitrary_input_never_5xx: hypothesis mixes baselines, catalogue values and arbitrary text
  (or JSON values) in all fields at once, plus unknown fields and wrong bodies. FUZZ_EXAMPLES=500
  in the environment for a deeper run than the default.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import traceback
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session
from wtforms.fields.core import UnboundField

from ledger.blueprints.backoffice.forms import (
    AdjustForm,
    CodeBatchForm,
    LimitForm,
    MarkPaidForm,
    PlanEditForm,
    PlanForm,
    RefundForm,
)
from ledger.blueprints.payments.recharge import RechargeForm, RedeemForm
from ledger.blueprints.people.account.forms import AlertForm, AvatarForm, LimitsForm, ProfileForm
from ledger.blueprints.people.auth.forms import LoginForm, RegisterForm
from ledger.blueprints.people.security.forms import PasswordForm
from ledger.db import Database
from ledger.extensions import limiter
from ledger.services.books.holds import place_hold
from ledger.services.console.pricing import MODELS
from ledger.services.context import INTERNAL
from ledger.services.growth.code_batches import create_batch
from ledger.services.growth.plans import create_plan, subscribe
from ledger.services.payments.xorpay import CreatedOrder, sign
from ledger.web.auth import SESSION_ID_KEY
from tests import factories
from tests.factories import PASSWORD, InviteFactory, PaymentFactory, UserFactory
from tests.helpers import INTERNAL_KEY, XORPAY_SECRET, AuthActions

# Hypothesis examples per route: the whole file stays well under a minute. FUZZ_EXAMPLES=500 for a deep run.
EXAMPLES_PER_ROUTE = int(os.environ.get("FUZZ_EXAMPLES", "20"))

# --- the routes -----------------------------------------------------------------------------------

EXCLUDED = {
    "static": "the app's static files: a fixed folder, no form, JSON or query input",
    "bootstrap.static": "Bootstrap-Flask's own static assets (third-party blueprint)",
}
EXCLUDED_BLUEPRINTS = {
    "sandbox": "the XorPay stand-in for development (XORPAY_SANDBOX=1, refused in production)",
}


class Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


BASE = Marker("BASE")  # the field keeps its valid baseline value
MISSING = Marker("MISSING")  # the field is left out
SIGNED = Marker("SIGNED")  # the webhook's sign: md5 over the values as the server receives them
FIELDS_IN_A_LIST = Marker("FIELDS_IN_A_LIST")  # a JSON body: [ {the fields} ] instead of {the fields}


@dataclass(frozen=True)
class Same:
    """A baseline equal to another field's value (a password confirmation)."""

    name: str


@dataclass(frozen=True)
class World:
    """What the baselines refer to: the signed-in person, another one, an order, a second login."""

    user: Any
    other: Any  # owns the invite code that the person binds
    invitee: Any  # invited by `other`, not rewarded: the subject of POST /api/invites/reward
    order: Any  # the person's pending top-up
    other_session: str  # the person's other login (revocable)
    hold: Any  # an active hold on the person's balance
    code_batch: Any  # a batch of redemption codes
    code: str  # one of its codes, unredeemed
    plan: Any  # a plan the person may subscribe to
    subscription: Any  # the person's subscription to another plan


Baseline = Any  # a value, MISSING, SIGNED, Same(...), or a function of the World


@dataclass(frozen=True, eq=False)
class Case:
    method: str
    endpoint: str
    who: str  # user (signed in), anonymous (signed out, CSRF token), internal (token header), xorpay, public
    body: str = "none"  # none (GET), form, json, multipart
    fields: dict[str, Baseline] = field(default_factory=dict)  # body fields
    query: dict[str, Baseline] = field(default_factory=dict)
    path: dict[str, Baseline] = field(default_factory=dict)
    variant: str = ""  # a second case of the same route with other baselines
    works: tuple[int, ...] = (200, 201, 302)  # the answer to the baselines: the request reached the view

    @property
    def id(self) -> str:
        return f"{self.method} {self.endpoint}" + (f" [{self.variant}]" if self.variant else "")

    def __repr__(self) -> str:
        return f"Case({self.id})"


MODEL = next(iter(MODELS))
PARAMS = {p.name: p.default for p in MODELS[MODEL].params}  # only the chosen model's parameters are read
NEW_PASSWORD = "fuzz-new-password-1"
RUN_ID = "7d4f0a52-1c1e-4f4e-9c55-0a5d6f3e2b11"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (2, 2), "#4a7").save(out, fmt)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """The PNG with another size in its header (CRC fixed): a decompression bomb, a zero side..."""
    png = bytearray(image("PNG"))
    png[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    return bytes(png)


PNG = image("PNG")
IMAGES = (  # uploads that are almost images
    PNG[:40],
    PNG[:-12],
    png_claiming(100_000, 100_000),
    png_claiming(0, 1),
    png_claiming(2**31 - 1, 1),
    image("GIF"),
    image("JPEG")[:-2],
    b"GIF89a" + b"\x00" * 20,
)


def user_email(w: World) -> str:
    return w.user.email


def other_code(w: World) -> str:
    return w.other.invite_code


def order_id(w: World) -> str:
    return str(w.order.id)


def hold_id(w: World) -> str:
    return str(w.hold.id)


def order_aoid(w: World) -> str:
    return w.order.provider_order_id


def code_batch_id(w: World) -> str:
    return str(w.code_batch.id)


def code_of(w: World) -> str:
    return w.code


CASES = [
    Case("GET", "site.dashboard", "user"),
    Case("GET", "site.set_language", "anonymous", path={"code": "en"}, query={"next": "/usage"}),
    Case("GET", "auth.login", "anonymous", query={"next": "/usage"}),
    Case(
        "POST",
        "auth.login",
        "anonymous",
        "form",
        fields={"email": user_email, "password": PASSWORD},
        query={"next": "/usage"},
    ),
    Case("GET", "auth.register", "anonymous", query={"invite": other_code}),
    Case(
        "POST",
        "auth.register",
        "anonymous",
        "form",
        fields={"email": "newcomer@example.com", "password": NEW_PASSWORD, "invite": other_code},
    ),
    Case("POST", "auth.logout", "user", "form"),
    Case(
        "GET",
        "usage.usage",
        "user",
        query={"from": "2026-01-01", "to": "2026-01-31", "model": MODEL, "cursor": MISSING},
    ),
    Case("GET", "console.console", "user", query={"model": MODEL, **PARAMS, "result": MISSING}),
    Case(
        "POST",
        "console.run",
        "user",
        "form",
        fields={"model": MODEL, "action": MISSING, "request_id": RUN_ID, **PARAMS},
    ),
    Case("POST", "console.run", "user", "form", fields={"model": MODEL, "action": "quote", **PARAMS}, variant="quote"),
    Case("GET", "console_api.quote", "user", query={"model": MODEL, **PARAMS}),
    Case("GET", "console.video_jobs", "user"),
    Case(
        "POST",
        "console.start_video",
        "user",
        "form",
        fields={"quality": "720p", "seconds": "2", "outcome": "complete", "request_id": RUN_ID},
    ),
    Case("GET", "payments.recharge", "user"),
    Case("POST", "payments.start", "user", "form", fields={"custom_amount": "", "amount": "50", "pay_type": "native"}),
    Case("GET", "payments.order", "user", path={"transaction_id": order_id}),
    # The person's order is pending: no receipt (404) is the designed answer to the baseline.
    Case("GET", "payments.receipt", "user", path={"transaction_id": order_id}, works=(404,)),
    Case("GET", "payments.export_topups", "user"),
    Case("POST", "payments.check", "user", "form", path={"transaction_id": order_id}),
    Case("POST", "payments.redeem", "user", "form", fields={"code": code_of}),
    Case("GET", "invites.invites", "user"),
    Case("GET", "plans.plans_page", "user"),
    Case("POST", "plans.subscribe", "user", "form", fields={"plan": lambda w: w.plan.code}),
    Case("POST", "plans.cancel", "user", "form", path={"subscription_id": lambda w: str(w.subscription.id)}),
    Case("POST", "invites.bind", "user", "form", fields={"code": other_code}),
    Case("GET", "account.account", "user", query={"before": "9000000000"}),
    Case(
        "POST",
        "account.save_profile",
        "user",
        "form",
        fields={
            "username": "fuzz_person",
            "full_name": "Fuzz Person",
            "website": "https://example.com/",
            "timezone": "Asia/Shanghai",
        },
    ),
    Case("POST", "account.save_alert", "user", "form", fields={"low_balance_threshold": "25.00"}),
    Case("POST", "account.save_limits", "user", "form", fields={"day": "20.00", "month": "300.00"}),
    Case("POST", "account.upload_avatar", "user", "multipart", fields={"avatar": PNG}),
    Case("GET", "account.avatar", "user", works=(404,)),  # nobody has an avatar yet
    Case("GET", "security.security", "user", query={"before": "9000000000"}),
    Case("POST", "security.revoke", "user", "form", path={"session_id": lambda w: w.other_session}),
    Case("POST", "security.revoke_others", "user", "form"),
    Case(
        "POST",
        "security.password",
        "user",
        "form",
        fields={"current": PASSWORD, "new": NEW_PASSWORD, "confirm": Same("new")},
    ),
    Case(
        "POST",
        "api_billing.deduct",
        "internal",
        "json",
        fields={
            "user_id": lambda w: str(w.user.id),
            "amount": "0.10",
            "model": MODEL,
            "request_id": "fuzz-request-1",
            "params": dict(PARAMS),
        },
    ),
    Case(
        "POST",
        "api_billing.deduct_batch",
        "internal",
        "json",
        fields={
            "charges": lambda w: [
                {"user_id": str(w.user.id), "amount": "0.10", "model": MODEL, "request_id": "fuzz-batch-1"},
                {"user_id": str(w.other.id), "amount": "0.10", "model": MODEL, "request_id": "fuzz-batch-2"},
            ]
        },
    ),
    Case("GET", "api_billing.summary", "user"),
    Case("POST", "api_payments.create", "user", "json", fields={"amount": "10.00", "pay_type": "native"}),
    Case("GET", "api_payments.show", "user", path={"transaction_id": order_id}),
    Case(
        "POST",
        "api_payments.webhook",
        "xorpay",
        "form",
        fields={
            "aoid": order_aoid,
            "order_id": order_id,
            "pay_price": "50.00",
            "pay_time": "2026-11-25 20:00:00",
            "more": "",
            "detail": '{"transaction_id": "2026x", "bank_type": "ALIPAY", "buyer": "b@example.com"}',
            "sign": SIGNED,
        },
    ),
    Case("POST", "api_invites.register", "user", "json", fields={"code": other_code}),
    Case("POST", "api_codes.redeem", "user", "json", fields={"code": code_of}),
    Case(
        "POST",
        "api_plans.subscribe",
        "internal",
        "json",
        fields={"user_id": lambda w: str(w.user.id), "plan": lambda w: w.plan.code},
    ),
    Case(
        "POST",
        "api_plans.cancel",
        "internal",
        "json",
        path={"subscription_id": lambda w: str(w.subscription.id)},
    ),
    Case("POST", "api_invites.reward", "internal", "json", fields={"invitee_id": lambda w: str(w.invitee.id)}),
    Case(
        "POST",
        "api_holds.place",
        "internal",
        "json",
        fields={
            "user_id": lambda w: str(w.user.id),
            "amount": "1.00",
            "model": MODEL,
            "request_id": "fuzz-hold-2",
            "params": dict(PARAMS),
            "ttl_seconds": 600,
        },
    ),
    Case("POST", "api_holds.capture", "internal", "json", fields={"amount": "0.50"}, path={"hold_id": hold_id}),
    Case("POST", "api_holds.release", "internal", "json", path={"hold_id": hold_id}),
    Case("GET", "api_holds.show", "internal", path={"hold_id": hold_id}),
    Case(
        "POST",
        "api_users.create",
        "internal",
        "json",
        fields={"email": "fuzz-made@example.com", "external_id": "fuzz:1", "username": "fuzz_made"},
    ),
    Case("GET", "api_users.look_up", "internal", query={"email": lambda w: w.user.email}),
    Case("GET", "api_users.read", "internal", path={"user_id": lambda w: str(w.user.id)}),
    Case(
        "POST",
        "api_users.portal_link",
        "internal",
        "json",
        fields={"next": "/usage", "return_url": None},  # no PORTAL_RETURN_HOSTS in the tests
        path={"user_id": lambda w: str(w.other.id)},  # not the admin: no portal link signs one in
    ),
    Case("GET", "auth.portal", "anonymous", path={"token": "x" * 43}),
    Case(
        "GET",
        "api_usage.report",
        "user",
        query={
            "from": "2026-01-01",
            "to": "2026-01-31",
            "group_by": "day",
            "model": MISSING,
            "format": "json",
            "cursor": MISSING,
            "limit": "10",
        },
    ),
    Case(
        "GET",
        "api_usage.report",
        "user",
        query={"from": "2026-01-01", "to": "2026-01-31", "model": MODEL, "format": "csv"},
        variant="csv",
    ),
    Case("GET", "health.healthz", "public"),
    Case("GET", "openapi.document", "public"),
    Case("GET", "openapi.docs", "public"),
    Case("GET", "health.scrape", "public", works=(401,)),  # no METRICS_TOKEN here: refused, never a 5xx
    Case("GET", "admin.home", "user"),
    Case("GET", "admin.people", "user", query={"q": "example", "page": "1"}),
    Case("GET", "admin.person", "user", path={"user_id": lambda w: str(w.other.id)}),
    Case(
        "GET",
        "admin.orders",
        "user",
        query={
            "status": "pending",
            "pay_type": "native",
            "from": "2026-01-01",
            "to": "2026-12-31",
            "person": "x",
            "page": "1",
        },
    ),
    Case("GET", "admin.order", "user", path={"transaction_id": order_id}),
    Case(
        "GET",
        "admin.audit",
        "user",
        query={"person": "x", "action": "auth.", "actor": "user", "from": "2026-01-01", "to": "2026-12-31"},
    ),
    Case(
        "POST",
        "admin.adjust",
        "user",
        "form",
        fields={
            "amount": "1.00",
            "debit": MISSING,
            "expires_at": "2099-01-31T23:59",
            "reason": "fuzz",
            "confirmed": MISSING,
        },
        path={"user_id": lambda w: str(w.other.id)},
    ),
    Case(
        "POST",
        "admin.set_limits",
        "user",
        "form",
        fields={"day": "8.00", "month": "", "reason": "fuzz", "confirmed": MISSING},
        path={"user_id": lambda w: str(w.other.id)},
    ),
    Case(
        "POST",
        "admin.sign_out",
        "user",
        "form",
        fields={"reason": "fuzz", "confirmed": MISSING},
        path={"user_id": lambda w: str(w.other.id)},
    ),
    Case(
        "POST",
        "admin.disable",
        "user",
        "form",
        fields={"reason": "fuzz", "confirmed": MISSING},
        path={"user_id": lambda w: str(w.other.id)},
    ),
    Case(
        "POST",
        "admin.enable",
        "user",
        "form",
        fields={"reason": "fuzz", "confirmed": MISSING},
        path={"user_id": lambda w: str(w.other.id)},
        works=(422,),
    ),
    Case(
        "POST",
        "admin.check",
        "user",
        "form",
        fields={"reason": "fuzz", "confirmed": MISSING},
        path={"transaction_id": order_id},
    ),
    Case(
        "POST",
        "admin.mark_paid",
        "user",
        "form",
        fields={"trade_no": "2026112622001", "reason": "fuzz", "confirmed": MISSING},
        path={"transaction_id": order_id},
    ),
    Case(
        "POST",
        "admin.refund",
        "user",
        "form",
        fields={"amount": "1.00", "reason": "fuzz", "confirmed": MISSING},
        path={"transaction_id": order_id},
        works=(422,),
    ),
    Case(
        "POST",
        "admin.resolve",
        "user",
        "form",
        fields={"outcome": "failed", "back": "/admin/orders", "reason": "fuzz", "confirmed": MISSING},
        path={"refund_id": lambda w: str(uuid.uuid4())},
        works=(200, 404),
    ),
    Case("GET", "admin.codes", "user", query={"page": "1", "code": code_of}),
    Case(
        "POST",
        "admin.create_code_batch",
        "user",
        "form",
        fields={
            "count": "2",
            "amount": "5.00",
            "expires": "2099-12-31",
            "credit_days": "30",
            "note": "fuzz",
            "reason": "fuzz",
            "confirmed": MISSING,
        },
    ),
    Case("GET", "admin.code_batch", "user", path={"batch_id": code_batch_id}),
    Case("GET", "admin.code_batch_csv", "user", path={"batch_id": code_batch_id}),
    Case(
        "POST",
        "admin.disable_code_batch",
        "user",
        "form",
        fields={"reason": "fuzz", "confirmed": MISSING},
        path={"batch_id": code_batch_id},
    ),
    Case(
        "POST",
        "admin.disable_code",
        "user",
        "form",
        fields={"reason": "fuzz", "confirmed": MISSING},
        path={"code": code_of},
    ),
    Case("GET", "admin.plans", "user"),
    Case(
        "POST",
        "admin.create_plan",
        "user",
        "form",
        fields={
            "code": "fuzz-new",
            "name_zh": "模糊",
            "name_en": "Fuzz",
            "period": "month",
            "price": "3.00",
            "allowance": "5.00",
            "reason": "fuzz",
            "confirmed": MISSING,
        },
    ),
    Case("GET", "admin.plan", "user", path={"code": lambda w: w.plan.code}),
    Case(
        "POST",
        "admin.edit_plan",
        "user",
        "form",
        fields={
            "name_zh": "模糊二",
            "name_en": "Fuzz two",
            "price": "2.00",
            "allowance": "4.00",
            "reason": "fuzz",
            "confirmed": MISSING,
        },
        path={"code": lambda w: w.plan.code},
    ),
    Case(
        "POST",
        "admin.retire_plan",
        "user",
        "form",
        fields={"reason": "fuzz", "confirmed": MISSING},
        path={"code": lambda w: w.plan.code},
    ),
]

# The WTForms classes behind the page forms: a field added to one must be fuzzed too.
FORMS = {
    "admin.adjust": AdjustForm,
    "admin.create_code_batch": CodeBatchForm,
    "admin.create_plan": PlanForm,
    "admin.edit_plan": PlanEditForm,
    "admin.mark_paid": MarkPaidForm,
    "admin.refund": RefundForm,
    "auth.login": LoginForm,
    "payments.redeem": RedeemForm,
    "auth.register": RegisterForm,
    "payments.start": RechargeForm,
    "account.save_profile": ProfileForm,
    "account.save_alert": AlertForm,
    "account.save_limits": LimitsForm,
    "admin.set_limits": LimitForm,
    "account.upload_avatar": AvatarForm,
    "security.password": PasswordForm,
}


def excluded_reason(endpoint: str) -> str | None:
    return EXCLUDED.get(endpoint) or EXCLUDED_BLUEPRINTS.get(endpoint.partition(".")[0])


def test_every_route_and_form_field_is_fuzzed_or_excluded(app: Flask) -> None:
    served = {}
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if not excluded_reason(rule.endpoint):
                served[(method, rule.endpoint)] = rule
    described = {(c.method, c.endpoint) for c in CASES}
    assert sorted(set(served) - described) == [], "routes neither fuzzed (CASES) nor EXCLUDED with a reason"
    assert sorted(described - set(served)) == [], "CASES names routes the app does not serve"
    for case in CASES:
        rule = served[(case.method, case.endpoint)]
        assert set(case.path) == set(rule.arguments), f"{case.id}: path parameters of {rule.rule}"
    for endpoint, form in FORMS.items():
        names = {n for n in dir(form) if isinstance(getattr(form, n), UnboundField)} - {"submit"}
        for case in (c for c in CASES if c.endpoint == endpoint and c.method == "POST"):
            assert names <= set(case.fields), f"{case.id}: fields of {form.__name__} not fuzzed"


# --- values ---------------------------------------------------------------------------------------

LONG = 10_001
# One of each kind of trouble, tried on every field in turn.
CATALOGUE_TEXT = (
    "",
    "ab\x00cd",
    "\ud800",
    "x\udfff",
    "/x\r\nSet-Cookie: a=b",
    "１０",
    "😀\u202e\u200fabc",
    "1e1",
    "+10",
    " 10.00",
    "-1",
    "99999999999999999999",
    "9" * LONG,
)
CATALOGUE_BYTES = (b"\xff\xfe", b"\xed\xa0\x80")  # not UTF-8 (the second: a surrogate encoded)
CATALOGUE_JSON_TEXT = ("\ud800", "ab\x00cd")  # a form cannot carry lone surrogates, JSON can
CATALOGUE_JSON = (None, True, 2**70, float("nan"), ["10.00"], {"a": {"b": []}})
RAW_BODIES = (
    ("application/json", b""),
    ("application/json", b"{"),
    ("application/json", b"\xff\xfe{}"),
    ("application/json", b"[" * 100_000 + b"]" * 100_000),
    ("application/x-www-form-urlencoded", b"\xff\xfe=\xed\xa0\x80&%zz=%&==&"),
    ("text/plain", b"\x00" * 100),
)
TOP_LEVEL_JSON = (FIELDS_IN_A_LIST, [], "text", 1, None)

SHARP = (
    *CATALOGUE_TEXT,
    "\udfff\ud800",
    "\r",
    "\n",
    "\t",
    "\x7f",
    "\ufeff10",
    "１０.００元",
    "10元",
    "10.00 ",
    "10.",
    ".5",
    "5e0",
    "-0",
    "NaN",
    "Infinity",
    "10.001",
    "0.00",
    "2026-02-30",
    "0001-01-01",
    "00000000-0000-0000-0000-000000000000",
    "%00",
    "%",
    "\\",
    "//evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "' OR 1=1 --",
    "x\x00" * (LONG // 2 + 1),
    "😀" * LONG,
)
CHARS = st.one_of(
    st.characters(),  # any code point but lone surrogates
    st.characters(categories=["Cs"]),  # lone surrogates
    st.sampled_from("\x00\r\n\t\u202e\u200f\ufeff\u3000０１２３４５６７８９．元+-eE.%"),
)
FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")


@st.composite
def numberish(draw: st.DrawFn) -> str:
    """Numbers as people and attackers type them: spaces, signs, exponents, full-width digits."""
    text = (
        draw(st.sampled_from(["", " ", "\t", "\u3000"]))
        + draw(st.sampled_from(["", "+", "-", "−"]))
        + str(draw(st.integers(0, 10**12)))
        + draw(st.sampled_from(["", ".", ".0", ".00", ".001", ".5"]))
        + draw(st.sampled_from(["", "e1", "E-2", "e999"]))
        + draw(st.sampled_from(["", " ", "元", "\n"]))
    )
    return text.translate(FULL_WIDTH) if draw(st.booleans()) else text


long_texts = st.builds(
    lambda unit, extra: unit * (LONG // len(unit) + 1 + extra),
    st.one_of(st.sampled_from(["x", "9", "😀", "\x00", "a\r\n", "\u202e"]), st.text(CHARS, min_size=1, max_size=4)),
    st.integers(0, 3),
)
texts = st.one_of(st.sampled_from(SHARP), st.text(CHARS, max_size=30), numberish(), long_texts)
form_values = st.one_of(texts, st.binary(max_size=16))
images = st.one_of(
    st.sampled_from(IMAGES),
    st.builds(
        lambda at, junk: PNG[:at] + junk + PNG[at + len(junk) :], st.integers(0, len(PNG)), st.binary(max_size=4)
    ),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(CHARS, max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


# --- requests -------------------------------------------------------------------------------------


@dataclass
class FuzzRequest:
    kind: str  # form, json, multipart, json-top (a JSON body that is not an object), raw, none
    fields: dict[str, Any] = field(default_factory=dict)  # name -> BASE, MISSING or a value
    query: dict[str, Any] = field(default_factory=dict)
    path: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields (query args for a GET)
    top: Any = None  # kind json-top
    raw: tuple[str, bytes] | None = None  # kind raw: content type and body


def body_kinds(case: Case) -> list[str]:
    """The route's own kind of body first, then the wrong ones."""
    if case.method == "GET":
        return ["none"]
    return [case.body] + [k for k in ("form", "json", "multipart", "json-top", "raw") if k != case.body]


def values_for(kind: str) -> st.SearchStrategy:
    return json_values if kind in ("json", "json-top") else form_values


@st.composite
def requests_for(draw: st.DrawFn, case: Case) -> FuzzRequest:
    kind = draw(st.sampled_from(body_kinds(case)))
    values = values_for(kind)
    known = {*case.fields, *case.query, "csrf_token"}
    return FuzzRequest(
        kind=kind,
        fields={
            n: draw(st.one_of(st.just(BASE), st.just(MISSING), images if n == "avatar" else values), label=n)
            for n in case.fields
        },
        query={n: draw(st.one_of(st.just(BASE), st.just(MISSING), form_values), label=n) for n in case.query},
        path={n: draw(st.one_of(st.just(BASE), form_values), label=n) for n in case.path},
        extra=draw(
            st.dictionaries(
                st.text(CHARS, max_size=8).filter(lambda k: k not in known),
                form_values if kind == "none" else values,
                max_size=2,
            ),
            label="extra",
        ),
        top=draw(st.one_of(st.sampled_from(TOP_LEVEL_JSON), json_values)) if kind == "json-top" else None,
        raw=draw(
            st.one_of(
                st.sampled_from(RAW_BODIES),
                st.tuples(st.sampled_from(sorted({c for c, _ in RAW_BODIES})), st.binary(max_size=300)),
            )
        )
        if kind == "raw"
        else None,
    )


def catalogue(case: Case) -> Iterator[tuple[str, FuzzRequest]]:
    """Each field in turn takes each catalogue value, the others their baseline; then wrong bodies."""
    own = body_kinds(case)[0]
    for name in case.fields:
        for value in CATALOGUE_TEXT + (() if own == "json" else CATALOGUE_BYTES) + (IMAGES if name == "avatar" else ()):
            yield f"{own} {name}={value!r:.60}", FuzzRequest(own, fields={name: value})
        if own == "json" or case.endpoint in FORMS:  # Flask-WTF reads a JSON body as the form
            for value in (CATALOGUE_JSON_TEXT if own != "json" else ()) + CATALOGUE_JSON:
                yield f"json {name}={value!r:.60}", FuzzRequest("json", fields={name: value})
    for group in ("query", "path"):
        for name in getattr(case, group):
            for value in CATALOGUE_TEXT + CATALOGUE_BYTES:
                yield f"{group} {name}={value!r:.60}", FuzzRequest(own, **{group: {name: value}})
    if case.method == "POST":
        for kind in body_kinds(case)[1:]:
            if kind == "json-top":
                for top in TOP_LEVEL_JSON:
                    yield f"json body {top!r}", FuzzRequest(kind, top=top)
            elif kind == "raw":
                for content_type, raw in RAW_BODIES:
                    yield f"{content_type} body {raw!r:.40}", FuzzRequest(kind, raw=(content_type, raw))
            else:
                yield f"{kind} body of the baseline fields", FuzzRequest(kind)


@dataclass
class Outcome:
    status: int
    request: str
    where: str = ""  # the exception the app logged (or let through the test client): type and place
    error: str = ""  # its last line
    location: str = ""  # of a redirect

    def describe(self) -> str:
        return f"{self.request}\n-> {self.status} {self.where or 'no exception logged'}\n   {self.error}"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def explain(exc_info: Any) -> tuple[str, str]:
    """Where the exception left the app's own code (type, file, line) and its last line."""
    _type, exc, tb = exc_info
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if "/ledger/" in f.filename] or frames
    where = (
        f" at {Path(ours[-1].filename).parent.name}/{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
    )
    message = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}{where}", f"{type(exc).__name__}: {message}"


def as_text(value: Any) -> str | bytes:
    return value if isinstance(value, str | bytes) else json.dumps(value)


def as_json(value: Any) -> Any:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def received(value: str | bytes) -> str:
    """A form value as the server decodes it (UTF-8, undecodable bytes replaced)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def quote_part(value: str | bytes) -> str:
    return quote(value, safe="") if isinstance(value, bytes) else quote(value, safe="", errors="surrogatepass")


def form_body(pairs: dict[str, Any]) -> bytes:
    items = [(k, as_text(v)) for k, v in pairs.items()]
    return urlencode(items, encoding="utf-8", errors="surrogatepass").encode("ascii")


def multipart_body(text: dict[str, Any], files: dict[str, Any]) -> tuple[bytes, str]:
    boundary = f"fuzz{uuid.uuid4().hex}"

    def header_name(name: str) -> bytes:
        return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A").encode("utf-8", "surrogatepass")

    out = io.BytesIO()
    for name, value, filename in [
        *((n, v, None) for n, v in text.items()),
        *((n, v, "f.png") for n, v in files.items()),
    ]:
        out.write(f"--{boundary}\r\n".encode())
        out.write(b'Content-Disposition: form-data; name="' + header_name(name) + b'"')
        if filename:
            out.write(f'; filename="{filename}"\r\nContent-Type: application/octet-stream'.encode())
        data = as_text(value)
        out.write(b"\r\n\r\n" + (data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")) + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class FakeGateway:
    """XorPay that always says ok: the top-up routes reach their end instead of a 502 gateway_error."""

    def create(self, **_form: Any) -> CreatedOrder:
        aoid = uuid.uuid4().hex
        return CreatedOrder(aoid=aoid, qr=f"https://qr.alipay.com/{aoid}", expires_in=1800)

    def query2(self, _order_id: str) -> str:
        return "new"

    def refund(self, _aoid: str, _price: str) -> None:
        return None


@dataclass(repr=False)
class Fuzzer:
    app: Flask
    connection: Connection
    world: World
    cookies: dict[str, str]  # who -> session cookie
    tokens: dict[str, str]  # who -> CSRF token
    log: Captured

    def rule(self, case: Case) -> str:
        return next(r.rule for r in self.app.url_map.iter_rules(case.endpoint) if case.method in r.methods)

    def resolve(self, spec: dict[str, Baseline], drawn: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, base in spec.items():
            value = drawn.get(name, BASE)
            if value is BASE:
                value = base(self.world) if callable(base) else base
            if value is not MISSING:
                out[name] = value
        for name, value in out.items():
            if isinstance(value, Same):
                out[name] = out.get(value.name, "")
        return out

    def send(self, case: Case, req: FuzzRequest) -> Outcome:
        limiter.reset()  # a rate limit would stop the fuzz before the view
        savepoint = self.connection.begin_nested()
        try:
            return self._send(case, req)
        finally:
            # A streamed answer's session, closed with the answer, may have ended it already.
            if self.connection.get_nested_transaction() is savepoint:
                savepoint.rollback()

    def _send(self, case: Case, req: FuzzRequest) -> Outcome:
        fields = self.resolve(case.fields, req.fields)
        query = self.resolve(case.query, req.query)
        if case.method == "GET":
            query.update(req.extra)
        else:
            fields.update(req.extra)
        if fields.get("sign") is SIGNED:
            fields["sign"] = sign(
                *(received(as_text(fields.get(k, ""))) for k in ("aoid", "order_id", "pay_price", "pay_time")),
                XORPAY_SECRET,
            )
        path = self.resolve(case.path, req.path)
        url = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", lambda m: quote_part(as_text(path[m[1]])), self.rule(case))
        if query:
            url += "?" + form_body(query).decode()

        client = self.app.test_client()
        headers = {}
        if case.who in self.cookies:
            client.set_cookie(self.app.config["SESSION_COOKIE_NAME"], self.cookies[case.who])
            headers["X-CSRFToken"] = self.tokens[case.who]
            if case.body != "json":  # a page's form checks its own csrf_token field, also in a JSON body
                fields = {"csrf_token": self.tokens[case.who], **fields}
        if case.who == "internal":
            headers["x-internal-token"] = INTERNAL_KEY

        data, content_type = None, None
        if req.kind == "form":
            data, content_type = form_body(fields), "application/x-www-form-urlencoded"
        elif req.kind == "json":
            data, content_type = json.dumps({k: as_json(v) for k, v in fields.items()}), "application/json"
        elif req.kind == "json-top":
            top = [{k: as_json(v) for k, v in fields.items()}] if req.top is FIELDS_IN_A_LIST else req.top
            data, content_type = json.dumps(top), "application/json"
        elif req.kind == "multipart":
            files = {
                k: v for k, v in fields.items() if k != "csrf_token" and (case.body != "multipart" or k == "avatar")
            }
            text = {k: v for k, v in fields.items() if k not in files}
            data, content_type = multipart_body(text, files)
        elif req.kind == "raw":
            assert req.raw is not None
            content_type, data = req.raw

        shown = f"{case.method} {url[:300]} {req.kind} body {str(data)[:300]}"
        self.log.records.clear()
        try:
            response = client.open(url, method=case.method, data=data, content_type=content_type, headers=headers)
            response.get_data()  # a streamed body (CSV) runs its generator here
        except Exception as exc:  # raised past the app's error handlers (in production: a bare 500)
            where, error = explain((type(exc), exc, exc.__traceback__))
            return Outcome(500, shown, f"{where}, past the error handlers", error)
        errors = [r for r in self.log.records if r.exc_info]
        where, error = explain(errors[-1].exc_info) if errors else ("", "")
        return Outcome(response.status_code, shown, where, error, response.headers.get("Location", ""))


@pytest.fixture(scope="module")
def fuzz(app: Flask, engine: Engine, database: Database) -> Iterator[Fuzzer]:
    """The world and the sign-ins, made once for the module in a transaction rolled back at its end (as the
    `session` fixture makes a test's): every request runs in a savepoint rolled back after it, so each
    test starts from them as made, without making them again (70 ms a test)."""
    with engine.connect() as connection, pytest.MonkeyPatch.context() as monkeypatch:
        outer = connection.begin()

        def factory() -> Session:
            return Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)

        monkeypatch.setattr(database, "session_factory", factory)
        session = factory()
        factories.bind(session)
        try:
            yield make_fuzzer(app, connection, session, monkeypatch)
        finally:
            limiter.reset()
            session.close()
            factories.bind(None)
            outer.rollback()


def make_fuzzer(app: Flask, connection: Connection, session: Session, monkeypatch: pytest.MonkeyPatch) -> Fuzzer:
    monkeypatch.setitem(app.extensions, "ledger.xorpay", FakeGateway())
    # Video jobs stay in their rolled-back transaction: nothing is handed to the (committed) task queue.
    monkeypatch.setattr("ledger.blueprints.console.pages.video_handoff", lambda _app: lambda _job_id: None)

    user = UserFactory(balance="10.00", is_admin=True)  # the back office too
    other = UserFactory()
    invitee = UserFactory()
    InviteFactory(inviter=other, invitee=invitee)
    order = PaymentFactory(user=user)
    hold = place_hold(session, user_id=user.id, amount="2.00", model=MODEL, request_id="fuzz-hold-1", ctx=INTERNAL)
    code_batch, (code,) = create_batch(
        session, INTERNAL.as_admin(user.id), count=1, amount="5.00", expires=None, note=None, reason="fuzz", tz=SHANGHAI
    )
    plan, held = (
        create_plan(
            session,
            INTERNAL.as_admin(user.id),
            code=code,
            name_zh="模糊",
            name_en="Fuzz",
            price="1.00",
            period="week",
            allowance="2.00",
            reason="fuzz",
        )
        for code in ("fuzz-plan", "fuzz-held")
    )
    subscription = subscribe(session, INTERNAL, str(user.id), held.code).subscription
    cookie_name = app.config["SESSION_COOKIE_NAME"]

    client = app.test_client()
    auth = AuthActions(client)
    assert auth.login(user).status_code == 302
    tokens = {"user": auth.csrf_token("/")}
    cookies = {"user": client.get_cookie(cookie_name).value}
    second = app.test_client()
    assert AuthActions(second).login(user).status_code == 302
    with second.session_transaction() as second_session:
        other_session = second_session[SESSION_ID_KEY]
    anonymous = app.test_client()
    tokens["anonymous"] = AuthActions(anonymous).csrf_token("/login")
    cookies["anonymous"] = anonymous.get_cookie(cookie_name).value

    # The app's logger, for this module, is one outside logging's tree: the tracebacks go into the
    # failure message, one line each, instead of pages of captured log.
    log = Captured()
    logger = logging.Logger(app.logger.name)
    logger.addHandler(log)
    monkeypatch.setattr(app, "logger", logger)
    world = World(user, other, invitee, order, other_session, hold.hold, code_batch, code, plan, subscription)
    return Fuzzer(app, connection, world, cookies, tokens, log)


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sharp_values_never_5xx(fuzz: Fuzzer, case: Case) -> None:
    baseline = fuzz.send(case, FuzzRequest(body_kinds(case)[0]))
    assert baseline.status in case.works, f"the baselines must reach the view: {baseline.describe()}"
    if case.who == "user" and case.endpoint != "auth.logout":
        assert not baseline.location.startswith("/login"), f"not signed in: {baseline.describe()}"
    failures: dict[str, list[str]] = {}  # one entry per place the app failed
    for label, req in catalogue(case):
        outcome = fuzz.send(case, req)
        if outcome.status >= 500:
            failures.setdefault(f"{outcome.status} {outcome.where}\n    {outcome.error}", []).append(label)
    report = "\n".join(
        f"{error}\n    {len(labels)} request(s): " + "; ".join(labels[:6]) for error, labels in failures.items()
    )
    assert not failures, f"{case.id} answered 5xx:\n{report}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@settings(
    max_examples=EXAMPLES_PER_ROUTE,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no "explain": it traces, slowly
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_arbitrary_input_never_5xx(fuzz: Fuzzer, case: Case, data: st.DataObject) -> None:
    outcome = fuzz.send(case, data.draw(requests_for(case), label="request"))
    status = outcome.status
    assert status < 500, outcome.describe()
