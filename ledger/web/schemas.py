"""The JSON API's request and response schemas (pydantic), one per shape of SPEC 6, built from the
field types of ledger.web.fields. They validate
each JSON route's input before its view runs and its answer after (ledger.web.openapi), and the
OpenAPI document at /api/openapi.json is made from them: the document is what the code checks.

A request schema says exactly what its route takes (SPEC 18: schemathesis checks both ways): each
field's constraint is the one its service checks, written as JSON Schema (money, text and whole
numbers as patterns made from the service's own rules: ledger.money, ledger.validation). The API is
a little stricter than a service where JSON Schema says a thing one way: a UUID in its usual form,
ttl_seconds as a JSON number, a query parameter never empty. The services still check every value;
what a schema refuses is answered as the field's service words it (RefusedAs), naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    RootModel,
    TypeAdapter,
)
from pydantic_core import CoreSchema

from ledger import validation
from ledger.errors import InvalidRequest
from ledger.i18n import N_
from ledger.models import EventType, LapseReason, PayType
from ledger.money import EXACT_DECIMAL
from ledger.services import events
from ledger.services.books import batch_charges, holds, usage_reports
from ledger.services.console import pricing
from ledger.services.growth import invites, plans
from ledger.services.payments.methods import parse_pay_type
from ledger.services.people import backend_accounts, portal, profile, sign_in
from ledger.web.context import settings
from ledger.web.fields import (
    NO_NUL,
    ChargeAmount,
    Format,
    Model,
    Money,
    Params,
    RefusedAs,
    RequestId,
    Schema,
    Time,
    TopupAmount,
    Uuid,
    optional,
)


def examples(*values: dict[str, Any]) -> ConfigDict:
    """A schema's examples (JSON Schema's `examples`, in the document): what a caller sends or reads.
    tests/web/test_openapi_reference.py checks each against its schema."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


# The story the examples tell: one person, a charge of an image, a hold for a video, a top-up.
PERSON = "4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10"
SOMEONE_ELSE = "8d2f6a1e-5c3b-4d97-a0e8-1f2b3c4d5e6f"
AT = "2026-12-08T10:15:00+08:00"
DEDUCT = {
    "user_id": PERSON,
    "amount": "0.20",
    "model": "image-studio-v2",
    "request_id": "job-42",
    "params": {"resolution": "1024"},
}
HOLD = {
    "user_id": PERSON,
    "amount": "8.00",
    "model": "motion-video-1",
    "request_id": "video-913",
    "params": {"quality": "720p", "seconds": 10},
    "ttl_seconds": 1800,
}

# --- requests -------------------------------------------------------------------------------------


class DeductBody(Schema):
    model_config = examples(DEDUCT)

    user_id: Uuid
    amount: ChargeAmount
    model: Model
    request_id: RequestId
    params: Params = None


@dataclass(frozen=True)
class DocumentedAs:
    """In the document, a field has the schema of the type `shown` (what callers should send), while
    it is validated as its own type (what the service checks itself)."""

    shown: Any

    def __get_pydantic_json_schema__(self, _schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return handler(TypeAdapter(self.shown).core_schema)


class BatchBody(Schema):
    model_config = examples(
        {
            "charges": [
                DEDUCT,
                {"user_id": SOMEONE_ELSE, "amount": "0.05", "model": "chat-pro", "request_id": "chat-7781"},
            ]
        }
    )

    # Each item is read by the service as one deduct's body (an item with bad fields is answered in
    # its place, SPEC 12): here only the list is checked; the document types the items as DeductBody.
    charges: Annotated[
        list[dict[str, Any]],
        Field(min_length=1, max_length=batch_charges.MAX_ITEMS),
        RefusedAs(lambda value, _, __: batch_charges.charge_list(value)),
        DocumentedAs(Annotated[list[DeductBody], Field(min_length=1, max_length=batch_charges.MAX_ITEMS)]),
    ] = Field(
        description=N_(
            "1 to 1,000 deducts, each with the fields of a deduct's body. Only a body whose `charges` is not a list "
            "of 1 to 1,000 objects is refused whole (422); an item with bad fields is answered in its place with "
            "`invalid_request`, and the others are charged."
        )
    )


def _json_number(value: object) -> object:
    """A JSON number, as JSON Schema's integer is (60 or 60.0): text and true/false are not."""
    if isinstance(value, str | bool):
        raise ValueError("not a JSON number")
    return value


class HoldBody(DeductBody):
    model_config = examples(HOLD)

    ttl_seconds: Annotated[
        Annotated[int, Field(ge=holds.TTL_MIN, le=holds.TTL_MAX), BeforeValidator(_json_number)] | None,
        # a JSON number without a fraction: the service's own words for anything else
        RefusedAs(
            lambda _, field, __: validation.whole_number(None, field, minimum=holds.TTL_MIN, maximum=holds.TTL_MAX)
        ),
    ] = Field(
        None,
        description=N_(
            "How long the money is held: a whole number of seconds from 60 to 86,400 (default 3,600), as a JSON number."
        ),
    )


class CaptureBody(Schema):
    model_config = examples({"amount": "4.80"})

    amount: ChargeAmount


class EmptyBody(Schema):
    pass


class CodeBody(Schema):
    model_config = examples({"code": "7KQ2-M9XP-R4TW-8HJD"})

    code: str = Field(max_length=200, description=N_("As typed: spaces, dashes and case do not matter."))


class InviteCodeBody(Schema):
    model_config = examples({"code": "k7p2qx9m"})

    code: Annotated[
        str,
        Field(min_length=1, pattern=f"[^{validation.WHITESPACE}]"),  # something besides spaces
        RefusedAs(lambda value, field, _: invites.typed_code(value, field)),
    ] = Field(description=N_("An invite code as typed: case and surrounding spaces do not matter."))


class InviteeBody(Schema):
    model_config = examples({"invitee_id": "e2b7c1d4-0a9f-4e83-b56c-7d8e9f0a1b2c"})

    invitee_id: Uuid


class TopupBody(Schema):
    model_config = examples({"amount": "50.00", "pay_type": "alipay"})

    amount: TopupAmount
    pay_type: Annotated[Literal["alipay", "native"], RefusedAs(lambda value, _, __: parse_pay_type(value))] = Field(
        PayType.ALIPAY.value, description=N_("alipay (default) or native: WeChat Pay.")
    )


class QuerySchema(Schema):
    """The parameters of a GET: each given at most once, as text."""


Day = Annotated[
    str,
    Field(pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    Format("date"),
    RefusedAs(lambda value, field, _: usage_reports.parse_date(value, field)),
]


class ReportQuery(QuerySchema):
    from_: Day = optional(alias="from", description=N_("First day, YYYY-MM-DD (default: 29 days ago)."))
    to: Day = optional(description=N_("Last day, YYYY-MM-DD (default: today)."))
    group_by: Literal["day", "model"] = optional(description=N_("Groups by day (the default) or by model."))
    model: Annotated[
        str,
        Field(pattern=validation.text_pattern(max_length=100)),
        RefusedAs(lambda value, field, _: validation.text(value, field, max_length=100)),
    ] = optional(description=N_("Only this model's charges."))
    format: Literal["json", "csv"] = optional(description=N_("json (the default) or csv."))
    cursor: Annotated[
        str,
        Field(pattern="^[A-Za-z0-9_-]{1,200}$"),
        RefusedAs(lambda value, _, __: usage_reports.decode_cursor(value)),
    ] = optional(description=N_("The next_cursor of the page before, as it was given."))
    limit: Annotated[
        str,
        Field(pattern=validation.whole_number_pattern(minimum=1, maximum=usage_reports.MAX_LIMIT)),
        RefusedAs(
            lambda value, field, _: validation.whole_number(value, field, minimum=1, maximum=usage_reports.MAX_LIMIT)
        ),
    ] = optional(description=N_("Items a page: 1 to 500 (default 50)."))


def _console_param(name: str) -> Any:
    """A parameter of a console model as a query field, checked as pricing.Param.parse checks it."""
    param = next(p for m in pricing.MODELS.values() for p in m.params if p.name == name)
    refused = RefusedAs(lambda value, _, __: param.parse(value))
    if param.choices:
        return Annotated[Literal[param.choices], refused]  # type: ignore[valid-type]
    pattern = validation.whole_number_pattern(minimum=param.minimum, maximum=param.maximum)
    return Annotated[str, Field(pattern=pattern), refused]


ConsoleModel = Literal[tuple(pricing.MODELS)]  # type: ignore[valid-type]


class QuoteQuery(QuerySchema):
    """A model and its parameters (each checked whatever the model; a model ignores the others')."""

    model: Annotated[ConsoleModel, RefusedAs(lambda value, _, __: pricing.quote(value, {}))] = Field(
        description=N_("A model of the console: image-studio-v2, motion-video-1 or chat-pro.")
    )
    resolution: _console_param("resolution") = optional(  # type: ignore[valid-type]
        description=N_("image-studio-v2: 512, 1024 (the default) or 2048.")
    )
    images: _console_param("images") = optional(  # type: ignore[valid-type]
        description=N_("image-studio-v2: how many images, 1 to 8 (default 1).")
    )
    quality: _console_param("quality") = optional(  # type: ignore[valid-type]
        description=N_("motion-video-1: 720p (the default) or 1080p.")
    )
    seconds: _console_param("seconds") = optional(  # type: ignore[valid-type]
        description=N_("motion-video-1: seconds of video, 1 to 60 (default 5).")
    )
    tier: _console_param("tier") = optional(  # type: ignore[valid-type]
        description=N_("chat-pro: standard (the default) or long-context.")
    )
    tokens: _console_param("tokens") = optional(  # type: ignore[valid-type]
        description=N_("chat-pro: tokens, 1 to 200,000 (default 2,000).")
    )


# --- answers --------------------------------------------------------------------------------------


class ErrorDetail(Schema):
    code: str = Field(
        description=N_("What went wrong, for code to read: each operation lists the codes of each status."),
        examples=["insufficient_balance"],
    )
    message: str = Field(
        description=N_("For people, in the caller's language (Accept-Language: Chinese unless English is asked for).")
    )
    field: str | None = Field(None, description=N_("The input field it is about, if any."))
    balance: Money | None = Field(None, description=N_("insufficient_balance: the person's balance."))
    available: Money | None = Field(None, description=N_("insufficient_balance: what they may spend (balance - held)."))
    subscription_id: Uuid | None = Field(None, description=N_("already_subscribed: the subscription the person holds."))


class Error(Schema):
    """Every refusal (SPEC 6), with more fields by code (e.g. `available` for insufficient_balance)."""

    model_config = examples(
        {
            "error": {
                "code": "insufficient_balance",
                "message": "The available balance (¥1.00) is too low for this charge.",
                "balance": "3.00",
                "available": "1.00",
            }
        }
    )

    error: ErrorDetail


USAGE = {
    "usage_id": "5b8e2f1c-3d4a-4e6b-9f70-a1c2d3e4f506",
    "model": "image-studio-v2",
    "amount": "0.20",
    "balance_after": "99.80",
    "request_id": "job-42",
    "params": {"resolution": "1024"},
    "created_at": AT,
}
CHARGE = {
    **USAGE,
    "user_id": PERSON,
    "balance": "99.80",
    "replayed": False,
    "drawn": {"paid": "0.00", "granted": "0.20", "plan": "0.00"},
}


class Usage(Schema):
    model_config = examples(USAGE)

    usage_id: Uuid = Field(description=N_("The charge's id (a usage log)."))
    model: str
    amount: Money = Field(description=N_("What was charged."))
    balance_after: Money = Field(
        description=N_("The balance this charge left, kept with the charge: a replay answers the same figure.")
    )
    request_id: str
    params: dict[str, Any] = Field(description=N_("What was sent as params ({} when none)."))
    created_at: Time


class Drawn(Schema):
    """What a charge took of each kind of money (SPEC 20); they sum to its amount."""

    model_config = examples(CHARGE["drawn"])

    paid: Money
    granted: Money
    plan: Money


class Charge(Usage):
    model_config = examples(CHARGE)

    user_id: Uuid
    balance: Money = Field(
        description=N_(
            "SPEC 6's name for `balance_after`: the same figure, the balance this charge left (not the balance now, "
            "on a replay)."
        )
    )
    replayed: bool = Field(description=N_("True when this request_id was charged before: nothing was charged again."))
    drawn: Drawn = Field(description=N_("What the charge took of paid, given and plan money."))


BatchStatus = Literal[
    "charged",
    "replayed",
    "insufficient_balance",
    "request_id_conflict",
    "user_not_found",
    "account_disabled",
    "spending_limit_reached",
    "invalid_request",
]
REFUSED_ITEM = {
    "index": 1,
    "status": "insufficient_balance",
    "error": {
        "code": "insufficient_balance",
        "message": "The available balance (¥0.03) is too low for this charge.",
        "balance": "0.03",
        "available": "0.03",
    },
}


class BatchItem(Schema):
    """A charged or replayed item carries a deduct's answer; any other carries `error`."""

    model_config = examples({"index": 0, "status": "charged", **CHARGE}, REFUSED_ITEM)

    index: int = Field(description=N_("The item's place in `charges`, from 0."))
    status: BatchStatus = Field(
        description=N_(
            "charged or replayed (the item carries a deduct's answer), else the code a single deduct would have "
            "answered (the item carries `error`)."
        )
    )
    error: ErrorDetail | None = None
    usage_id: Uuid | None = None
    user_id: Uuid | None = None
    model: str | None = None
    amount: Money | None = None
    balance_after: Money | None = None
    balance: Money | None = None
    request_id: str | None = None
    params: dict[str, Any] | None = None
    created_at: Time | None = None
    replayed: bool | None = None
    drawn: Drawn | None = None


class BatchAnswer(Schema):
    model_config = examples({"results": [{"index": 0, "status": "charged", **CHARGE}, REFUSED_ITEM]})

    results: list[BatchItem] = Field(description=N_("One answer an item, in the order of `charges`."))


PLACED = {
    "hold_id": "0d3c9a58-7b1e-4f26-8e4d-6a5b3c2d1e0f",
    "user_id": PERSON,
    "amount": "8.00",
    "held_amount": "8.00",
    "request_id": "video-913",
    "model": "motion-video-1",
    "params": {"quality": "720p", "seconds": 10},
    "status": "active",
    "created_at": AT,
    "expires_at": "2026-12-08T10:45:00+08:00",
    "settled_at": None,
    "captured_amount": None,
    "released_amount": None,
    "usage_id": None,
}
CAPTURED = {
    **PLACED,
    "status": "captured",
    "settled_at": "2026-12-08T10:17:30+08:00",
    "captured_amount": "4.80",
    "released_amount": "3.20",
    "usage_id": "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
}
RELEASED = {**PLACED, "status": "released", "settled_at": "2026-12-08T10:16:05+08:00", "released_amount": "8.00"}
# What each hold route answers (ledger.web.openapi gives each route its own).
HOLD_ANSWERS = {
    "placed": {**PLACED, "balance": "99.80", "available": "91.80", "replayed": False},
    "captured": {**CAPTURED, "balance": "95.00", "available": "95.00", "replayed": False},
    "released": {**RELEASED, "balance": "99.80", "available": "99.80", "replayed": False},
}


class Hold(Schema):
    model_config = examples(CAPTURED, PLACED)

    hold_id: Uuid
    user_id: Uuid
    amount: Money = Field(
        description=N_("The hold's amount, what was held: in every answer, a capture's too (see captured_amount).")
    )
    held_amount: Money = Field(description=N_("The same figure as `amount`, named for what it is."))
    request_id: str
    model: str
    params: dict[str, Any]
    status: Literal["active", "captured", "released", "expired"]
    created_at: Time
    expires_at: Time = Field(description=N_("When an active hold expires by itself and its money is available again."))
    settled_at: Time | None = Field(description=N_("When it was captured, released or expired; null while active."))
    captured_amount: Money | None = Field(description=N_("What the capture charged; null unless captured."))
    released_amount: Money | None = Field(
        description=N_(
            "What went back to the available amount: the rest of a capture, or the whole hold once released or "
            "expired; null while active."
        )
    )
    usage_id: Uuid | None = Field(description=N_("The charge a capture wrote; null unless captured."))


class HoldAnswer(Hold):
    model_config = examples(*HOLD_ANSWERS.values())

    balance: Money = Field(description=N_("The person's balance after this call."))
    available: Money = Field(description=N_("What they may spend after this call: the balance minus what is held."))
    replayed: bool = Field(description=N_("True when this answer repeats an earlier one: nothing was done again."))


ORDER = {
    "transaction_id": "1f0e4b7a-62c9-4d35-9a8e-7c3b5d2e1f04",
    "status": "succeeded",
    "amount": "50.00",
    "pay_type": "alipay",
    "provider_order_id": "a81f3c0e9b2d4e57",
    "created_at": "2026-12-07T20:02:11+08:00",
    "paid_at": "2026-12-07T20:03:40+08:00",
    "expires_at": "2026-12-07T20:32:11+08:00",
}


class Order(Schema):
    model_config = examples(ORDER)

    transaction_id: Uuid
    status: Literal["pending", "succeeded", "failed", "expired"]
    amount: Money
    pay_type: Literal["alipay", "native"] = Field(description=N_("alipay, or native: WeChat Pay."))
    provider_order_id: str | None = Field(description=N_("XorPay's id of the order (aoid), once it has one."))
    created_at: Time
    paid_at: Time | None = Field(description=N_("When it was paid; null unless succeeded."))
    expires_at: Time | None = Field(description=N_("When an unpaid order stops taking payment."))


class NewOrder(Order):
    model_config = examples(
        {
            **ORDER,
            "status": "pending",
            "paid_at": None,
            "qr": "https://qr.alipay.com/bax08431kzfnhbyw1pb00077",
            "qr_svg": '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 29 29">...</svg>',
        }
    )

    qr: str = Field(description=N_("What the QR code encodes: scanned with Alipay, or WeChat for native."))
    qr_svg: str = Field(description=N_("The QR code as inline SVG."))


class Group(Schema):
    model_config = examples({"key": "2026-12-08", "count": 2, "amount": "0.25"})

    key: str = Field(description=N_("The day (YYYY-MM-DD) or the model."))
    count: int
    amount: Money


class Totals(Schema):
    model_config = examples({"count": 2, "amount": "0.25"})

    count: int
    amount: Money


class Report(Schema):
    model_config = examples(
        {
            "from": "2026-11-09",
            "to": "2026-12-08",
            "group_by": "day",
            "model": None,
            "totals": {"count": 2, "amount": "0.25"},
            "groups": [{"key": "2026-12-08", "count": 2, "amount": "0.25"}],
            "items": [
                USAGE,
                {
                    **USAGE,
                    "usage_id": "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6",
                    "model": "chat-pro",
                    "amount": "0.05",
                    "balance_after": "99.75",
                    "request_id": "chat-7781",
                    "params": {},
                },
            ],
            "next_cursor": None,
        }
    )

    from_: str = Field(alias="from", description=N_("The first day of the range (YYYY-MM-DD)."))
    to: str = Field(description=N_("The last day of the range, included."))
    group_by: str
    model: str | None
    totals: Totals
    groups: list[Group]
    items: list[Usage] = Field(description=N_("The charges of this page, newest first."))
    next_cursor: str | None = Field(description=N_("Send it as `cursor` for the next page; null on the last one."))


class SpendSummary(Schema):
    model_config = examples({"today": "0.25", "last_30_days": "18.40", "count_30_days": 57})

    today: Money
    last_30_days: Money
    count_30_days: int


INVITES = {
    "code": "k7p2qx9m",
    "link": "https://ledger.example/register?invite=k7p2qx9m",
    "invited_count": 3,
    "rewards_total": "30.00",
}


class InviteSummary(Schema):
    model_config = examples(INVITES)

    code: str = Field(description=N_("The person's own invite code."))
    link: str = Field(description=N_("The sign-up link that carries it."))
    invited_count: int
    rewards_total: Money


EXPIRING = {"amount": "5.00", "expires_at": "2026-12-31T23:59:59+08:00", "category": "granted"}


class Expiring(Schema):
    model_config = examples(EXPIRING)

    amount: Money = Field(description=N_("What remains of the lot."))
    expires_at: Time
    category: Literal["plan", "granted", "paid"]


class Summary(Schema):
    model_config = examples(
        {
            "user_id": PERSON,
            "email": "li.wei@example.com",
            "balance": "99.75",
            "held": "6.00",
            "available": "93.75",
            "currency": "CNY",
            "paid": "94.75",
            "granted": "5.00",
            "plan": "0.00",
            "expiring": [EXPIRING],
            "usage": {"today": "0.25", "last_30_days": "18.40", "count_30_days": 57},
            "recent_usage": [USAGE],
            "recent_transactions": [ORDER],
            "invites": INVITES,
        }
    )

    user_id: Uuid
    email: str
    balance: Money
    held: Money = Field(description=N_("Set aside by active holds (and pending refunds)."))
    available: Money = Field(description=N_("What the person may spend: the balance minus what is held."))
    currency: Literal["CNY"]
    paid: Money = Field(description=N_("Of the balance: money the person paid for (never expires)."))
    granted: Money = Field(description=N_("Of the balance: money given (invite rewards, codes, admin credits)."))
    plan: Money = Field(description=N_("Of the balance: what is left of plan allowances."))
    expiring: list[Expiring] = Field(description=N_("The next lots to expire, soonest first (at most 5)."))
    usage: SpendSummary
    recent_usage: list[Usage]
    recent_transactions: list[Order]
    invites: InviteSummary


class Bound(Schema):
    model_config = examples({"inviter": "li***@example.com", "created_at": AT})

    inviter: str = Field(description=N_("How the inviter is shown to the invitee (never their email)."))
    created_at: Time


class Reward(Schema):
    model_config = examples(
        {"rewarded": True, "already_rewarded": False, "inviter_reward": "10.00", "invitee_reward": "5.00"}
    )

    rewarded: bool = Field(description=N_("True when this call paid the rewards."))
    already_rewarded: bool = Field(description=N_("True when they had been paid before: nothing was paid again."))
    inviter_reward: Money
    invitee_reward: Money


class Quote(Schema):
    model_config = examples(
        {"model": "motion-video-1", "amount": "8.00", "unit_price": "0.80", "quantity": "10", "display": "8.00"}
    )

    model: str
    amount: Money = Field(description=N_("The price of the run: unit_price times quantity, rounded up to 4 decimals."))
    unit_price: Money
    quantity: str = Field(description=N_("What unit_price is of: images, seconds of video or thousands of tokens."))
    display: str = Field(description=N_("The amount as pages show it, with thousands separators."))


class Redeemed(Schema):
    model_config = examples({"amount": "50.00", "balance": "149.75"})

    amount: Money = Field(description=N_("What the code credited."))
    balance: Money = Field(description=N_("The person's balance after it."))


class Health(Schema):
    model_config = examples({"status": "ok"}, {"status": "unavailable", "database": "unreachable"})

    status: Literal["ok", "unavailable"]
    database: str | None = Field(None, description=N_("unreachable, when the status is unavailable."))


# --- events to the SaaS (SPEC 16, 20): the bodies Ledger posts to EVENTS_URL ------------------------

SignedMoney = Annotated[
    str,
    Field(
        pattern=f"^-?{EXACT_DECIMAL.pattern}$",
        description=N_('Money as an exact decimal string in yuan, negative for money taken away, such as "-5.00".'),
        examples=["-5.00"],
    ),
    Format("decimal"),
]


class EventData(Schema):
    """What every event's `data` holds: whose money, and their figures after the change."""

    user_id: Uuid
    balance: Money = Field(description=N_("The person's balance after the change."))
    available: Money = Field(description=N_("What they may spend after the change: the balance minus what is held."))


class TopupSucceededData(EventData):
    transaction_id: Uuid = Field(description=N_("The top-up order (GET /api/payments/{transaction_id})."))
    amount: Money = Field(description=N_("What was paid and credited."))


class BalanceLowData(EventData):
    threshold: Money = Field(description=N_("The person's low-balance threshold (their own, else the site's)."))
    usage_id: Uuid | None = Field(None, description=N_("The charge that crossed it (or hold_id: the hold)."))
    hold_id: Uuid | None = Field(None, description=N_("The hold that crossed it (or usage_id: the charge)."))
    amount: Money = Field(description=N_("The charge's or hold's amount."))


class HoldExpiredData(EventData):
    hold_id: Uuid
    request_id: str = Field(description=N_("The hold's request_id."))
    amount: Money = Field(description=N_("The hold's amount: available again."))


class RefundData(EventData):
    refund_id: Uuid
    transaction_id: Uuid = Field(description=N_("The top-up order refunded."))
    amount: Money = Field(description=N_("The refund's amount."))


class RedemptionRedeemedData(EventData):
    code: str = Field(description=N_("The code redeemed, in capitals without dashes."))
    amount: Money = Field(description=N_("What it credited."))


class BalanceAdjustedData(EventData):
    entry_id: int = Field(description=N_("The ledger entry of the adjustment."))
    amount: SignedMoney = Field(description=N_("Credited (positive) or debited (negative) by an admin."))


class CreditLotData(EventData):
    lot_id: int = Field(description=N_("The credit lot (given or plan money) concerned."))
    category: Literal["granted", "plan"]
    amount: Money = Field(description=N_("What expires (credit.expiring) or expired (credit.expired) of the lot."))
    expires_at: Time = Field(description=N_("The lot's expiry."))


LapseReasonName = Literal[tuple(r.value for r in LapseReason)]  # type: ignore[valid-type]


class SubscriptionRenewedData(EventData):
    subscription_id: Uuid
    plan: str = Field(description=N_("The plan's code."))
    period: int = Field(description=N_("The period just sold: 2 for the first renewal."))
    amount: Money = Field(description=N_("The price charged for it (a charge of model plan:<code>)."))
    allowance: Money = Field(description=N_("The plan money it granted, spendable until current_period_end."))
    usage_id: Uuid = Field(description=N_("The charge of the price."))
    current_period_start: Time
    current_period_end: Time = Field(description=N_("When the period ends: the next renewal, or the lapse."))


class SubscriptionLapsedData(EventData):
    subscription_id: Uuid
    plan: str = Field(description=N_("The plan's code."))
    reason: LapseReasonName = Field(
        description=N_(
            "Why it was not renewed: cancelled (auto-renew was off), insufficient_balance, plan_retired, "
            "account_disabled or spending_limit_reached."
        )
    )
    periods: int = Field(description=N_("How many periods it was sold for."))
    ended_at: Time = Field(description=N_("The end of its last period."))


class LimitReachedData(EventData):
    period: Literal["day", "month"] = Field(description=N_("The limit's period, in the person's time zone."))
    set_by: Literal["person", "admin"] = Field(description=N_("Who set the limit that applies (the lower of two)."))
    limit: Money = Field(description=N_("The limit."))
    spent: Money = Field(description=N_("What the period has taken from the wallet so far."))
    period_start: Time = Field(description=N_("The period's start."))
    resets_at: Time = Field(description=N_("When the next period starts."))


@dataclass(frozen=True)
class Webhook:
    """An event type as the document's `webhooks` show it: when it is sent, and its body's schema."""

    summary: str
    body: type[BaseModel]


def _event(type_: EventType, data: type[EventData]) -> type[BaseModel]:
    """The body posted for events of `type_`: {"id", "type", "created_at", "data"}, with its sample."""
    name = "".join(part.capitalize() for part in type_.value.split(".")) + "Event"
    fields = {
        "__doc__": f"The body of a {type_.value} event.",
        "__module__": __name__,
        "__annotations__": {"id": Uuid, "type": Literal[type_.value], "created_at": Time, "data": data},
        "model_config": examples(events.sample_event(type_)),
        "id": Field(description=N_("The event's id: the same on every retry and replay; dedupe by it.")),
        "created_at": Field(description=N_("When the change happened.")),
    }
    return type(name, (Schema,), fields)


WEBHOOKS: dict[EventType, Webhook] = {
    type_: Webhook(summary, _event(type_, data))
    for type_, summary, data in (
        (EventType.TOPUP_SUCCEEDED, N_("A top-up was paid and credited."), TopupSucceededData),
        (
            EventType.BALANCE_LOW,
            N_(
                "A charge or a hold took the available amount below the person's threshold (sent again only once it "
                "has gone back above)."
            ),
            BalanceLowData,
        ),
        (
            EventType.HOLD_EXPIRED,
            N_("A hold was neither captured nor released in time: its money is available again."),
            HoldExpiredData,
        ),
        (EventType.REFUND_SUCCEEDED, N_("A refund of a top-up went through: its amount left the balance."), RefundData),
        (
            EventType.REFUND_FAILED,
            N_("A refund was refused by the gateway: the money set aside for it is available again."),
            RefundData,
        ),
        (
            EventType.REDEMPTION_REDEEMED,
            N_("The person redeemed a code: its amount was credited."),
            RedemptionRedeemedData,
        ),
        (EventType.BALANCE_ADJUSTED, N_("An admin credited or debited the balance by hand."), BalanceAdjustedData),
        (
            EventType.CREDIT_EXPIRING,
            N_("Given or plan money expires soon (CREDIT_EXPIRY_NOTICE_DAYS ahead)."),
            CreditLotData,
        ),
        (EventType.CREDIT_EXPIRED, N_("Given or plan money expired: it left the balance."), CreditLotData),
        (
            EventType.SUBSCRIPTION_RENEWED,
            N_("A subscription's period ended and the next was sold: its price charged, its allowance granted."),
            SubscriptionRenewedData,
        ),
        (
            EventType.SUBSCRIPTION_LAPSED,
            N_(
                "A subscription's period ended and it was not renewed (cancelled, the plan retired, or the price "
                "could not be charged): it has ended."
            ),
            SubscriptionLapsedData,
        ),
        (
            EventType.LIMIT_REACHED,
            N_(
                "Spending reached a spending limit, or a request was refused by one: once per period and limit "
                "(SPEC 22)."
            ),
            LimitReachedData,
        ),
    )
}


class CsvText(RootModel[str]):
    """CSV (text/csv), one row a charge."""


# --- accounts (SPEC 25) ---------------------------------------------------------------------------


def _return_url(value: object) -> object:
    config = settings()
    return portal.return_url_of(value, allowed_hosts=config.PORTAL_RETURN_HOSTS, production=config.is_production)


Email = Annotated[
    str,
    Field(max_length=sign_in.EMAIL_MAX_LENGTH, description=N_("The person's email; stored lower-cased.")),
    Format("email"),
    RefusedAs(lambda value, _, __: sign_in.normalise_email(value)),
]
ExternalId = Annotated[
    str,
    Field(
        pattern=f"^{backend_accounts.EXTERNAL_ID.pattern}$",
        description=N_("Your own id of the person: 1 to 128 characters of A-Z, a-z, 0-9 and . _ : -"),
        examples=["saas-user:1842"],
    ),
]
EXTERNAL_ID_REFUSED = RefusedAs(lambda value, _, __: backend_accounts.external_id_of(value))
PORTAL_NEXT = "^(" + "|".join(portal.PAGES) + ')(\\?[!-"$-~]*)?$'  # a page, then a query without # or spaces


class UserBody(Schema):
    model_config = examples({"email": "li.wei@example.com", "external_id": "saas-user:1842", "username": "liwei"})

    email: Email
    external_id: Annotated[ExternalId | None, EXTERNAL_ID_REFUSED] = Field(
        None, description=N_("Your own id of the person (optional); unique among Ledger's accounts.")
    )
    # The profile's rules (letters of one writing system, digits, _ . -) say more than JSON Schema can.
    username: Annotated[
        Annotated[str, Field(min_length=3, max_length=30)] | None,
        RefusedAs(lambda value, _, __: profile.ProfileChange.parse(value, None, None, None)),
    ] = Field(None, description=N_("3 to 30 letters, digits, '_', '.' or '-'; read only when the account is made."))


class UserQuery(QuerySchema):
    email: Annotated[str, Field(max_length=sign_in.EMAIL_MAX_LENGTH, pattern=NO_NUL)] = optional(
        description=N_("Find by email (give this or external_id).")
    )
    external_id: Annotated[ExternalId, EXTERNAL_ID_REFUSED] = optional(
        description=N_("Find by your own id of the person (give this or email).")
    )


class PortalBody(Schema):
    model_config = examples({"next": "/recharge", "return_url": "https://app.example.com/billing"})

    next: Annotated[
        Annotated[str, Field(max_length=portal.NEXT_MAX, pattern=PORTAL_NEXT)] | None,
        RefusedAs(lambda value, _, __: portal.landing_page(value)),
    ] = Field(None, description=N_("The page the person lands on: /, /recharge (the default), /usage, /account, ..."))
    return_url: Annotated[
        Annotated[str, Field(max_length=portal.RETURN_URL_MAX), Format("uri")] | None,
        RefusedAs(lambda value, _, __: _return_url(value)),
    ] = Field(
        None,
        description=N_(
            "Where the pages' 'Back' link leads: a URL whose host (and port) is one of PORTAL_RETURN_HOSTS (https in "
            "production)."
        ),
    )


class Account(Schema):
    model_config = examples(
        {
            "user_id": PERSON,
            "email": "li.wei@example.com",
            "external_id": "saas-user:1842",
            "username": "liwei",
            "created_at": "2026-11-02T09:30:00+08:00",
            "disabled": False,
            "balance": "99.80",
            "held": "8.00",
            "available": "91.80",
            "paid": "94.80",
            "granted": "5.00",
            "plan": "0.00",
        }
    )

    user_id: Uuid
    email: str
    external_id: str | None
    username: str | None
    created_at: Time
    disabled: bool = Field(description=N_("Disabled by an admin: cannot sign in or be charged; the money stays."))
    balance: Money
    held: Money
    available: Money
    paid: Money = Field(description=N_("Of the balance: money the person paid for (never expires)."))
    granted: Money = Field(description=N_("Of the balance: money given (invite rewards, codes, admin credits)."))
    plan: Money = Field(description=N_("Of the balance: what is left of plan allowances."))


class PortalLink(Schema):
    model_config = examples(
        {
            "url": "https://ledger.example/portal/q3Zk9wT1xV0bN4rM8sLp2cYd6fHj5aGe7uKi0oWzXy4",
            "expires_at": "2026-12-08T10:25:00+08:00",
        }
    )

    url: str = Field(description=N_("SITE_URL/portal/<token>: signs the person in once."))
    expires_at: Time = Field(description=N_("10 minutes from now: the link works once, until then."))


# --- plans (SPEC 21) ------------------------------------------------------------------------------

PLAN_CODE_REFUSED = N_("Give a plan's code: 2 to 32 lowercase letters, digits and dashes.")
SUBSCRIBED = {
    "subscription_id": "b5e2c8d1-4f3a-4a7b-9c60-2d8e1f7a3b94",
    "user_id": PERSON,
    "plan": "pro-monthly",
    "status": "active",
    "auto_renew": True,
    "current_period_start": AT,
    "current_period_end": "2027-01-08T10:15:00+08:00",
    "balance": "119.80",
    "available": "119.80",
}
CANCELLED = {**SUBSCRIBED, "status": "cancelled", "auto_renew": False}


def _plan_code(value: object) -> object:
    raise InvalidRequest(PLAN_CODE_REFUSED, field="plan")


class SubscribeBody(Schema):
    model_config = examples({"user_id": PERSON, "plan": "pro-monthly"})

    user_id: Uuid
    plan: Annotated[
        str,
        Field(pattern=f"^{plans.CODE.pattern}$", examples=["pro-monthly"]),
        RefusedAs(lambda value, _, __: _plan_code(value)),
    ] = Field(description=N_("The plan's code: 2 to 32 lowercase letters, digits and dashes."))


class SubscriptionAnswer(Schema):
    """A subscription, with the person's money after the call."""

    model_config = examples(SUBSCRIBED, CANCELLED)

    subscription_id: Uuid
    user_id: Uuid
    plan: str = Field(description=N_("The plan's code."))
    status: Literal["active", "cancelled", "lapsed"] = Field(
        description=N_(
            "active: renews at the period's end; cancelled: auto-renew off, the allowance kept until the period "
            "ends; lapsed: it has ended."
        )
    )
    auto_renew: bool = Field(description=N_("True while active: the next period is charged when this one ends."))
    current_period_start: Time
    current_period_end: Time = Field(
        description=N_("When the period ends (its allowance expires then): the next renewal, or the lapse.")
    )
    balance: Money = Field(description=N_("The person's balance after this call."))
    available: Money = Field(description=N_("What they may spend after this call: the balance minus what is held."))
