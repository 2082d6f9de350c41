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

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    RootModel,
)

from ledger import validation
from ledger.i18n import N_
from ledger.models import PayType
from ledger.services.books import batch_charges, holds, usage_reports
from ledger.services.console import pricing
from ledger.services.growth import invites
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

# --- requests -------------------------------------------------------------------------------------


class DeductBody(Schema):
    user_id: Uuid
    amount: ChargeAmount
    model: Model
    request_id: RequestId
    params: Params = None


class BatchBody(Schema):
    charges: Annotated[
        list[dict[str, Any]],
        Field(min_length=1, max_length=batch_charges.MAX_ITEMS),
        RefusedAs(lambda value, _, __: batch_charges.charge_list(value)),
    ] = Field(description=N_("1 to 1,000 objects with the fields of a deduct."))


def _json_number(value: object) -> object:
    """A JSON number, as JSON Schema's integer is (60 or 60.0): text and true/false are not."""
    if isinstance(value, str | bool):
        raise ValueError("not a JSON number")
    return value


class HoldBody(DeductBody):
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
    amount: ChargeAmount


class EmptyBody(Schema):
    pass


class CodeBody(Schema):
    code: str = Field(max_length=200, description=N_("As typed: spaces, dashes and case do not matter."))


class InviteCodeBody(Schema):
    code: Annotated[
        str,
        Field(min_length=1, pattern=f"[^{validation.WHITESPACE}]"),  # something besides spaces
        RefusedAs(lambda value, field, _: invites.typed_code(value, field)),
    ] = Field(description=N_("An invite code as typed: case and surrounding spaces do not matter."))


class InviteeBody(Schema):
    invitee_id: Uuid


class TopupBody(Schema):
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
    code: str = Field(examples=["insufficient_balance"])
    message: str = Field(description=N_("In the person's language (zh or en)."))
    field: str | None = Field(None, description=N_("The input field it is about, if any."))
    balance: Money | None = Field(None, description=N_("insufficient_balance: the person's balance."))
    available: Money | None = Field(None, description=N_("insufficient_balance: what they may spend (balance - held)."))


class Error(Schema):
    """Every refusal (SPEC 6), with more fields by code (e.g. `available` for insufficient_balance)."""

    error: ErrorDetail


class Usage(Schema):
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

    paid: Money
    granted: Money
    plan: Money


class Charge(Usage):
    user_id: Uuid
    balance: Money = Field(
        description=N_(
            "SPEC 6's name for `balance_after`: the same figure, the balance this charge left (not the balance now, "
            "on a replay)."
        )
    )
    replayed: bool = Field(description=N_("True when this request_id was charged before: nothing was charged again."))
    drawn: Drawn = Field(description=N_("What the charge took of paid, given and plan money."))


class BatchItem(Schema):
    """A charged or replayed item carries a deduct's answer; any other carries `error`."""

    index: int
    status: str = Field(description=N_("charged, replayed, or the code a single deduct would have answered."))
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
    results: list[BatchItem]


class Hold(Schema):
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
    balance: Money = Field(description=N_("The person's balance after this call."))
    available: Money = Field(description=N_("What they may spend after this call: the balance minus what is held."))
    replayed: bool = Field(description=N_("True when this answer repeats an earlier one: nothing was done again."))


class Order(Schema):
    transaction_id: Uuid
    status: Literal["pending", "succeeded", "failed", "expired"]
    amount: Money
    pay_type: Literal["alipay", "native"]
    provider_order_id: str | None
    created_at: Time
    paid_at: Time | None
    expires_at: Time | None


class NewOrder(Order):
    qr: str = Field(description=N_("What the QR code encodes: scanned with Alipay, or WeChat for native."))
    qr_svg: str = Field(description=N_("The QR code as inline SVG."))


class Group(Schema):
    key: str
    count: int
    amount: Money


class Totals(Schema):
    count: int
    amount: Money


class Report(Schema):
    from_: str = Field(alias="from")
    to: str
    group_by: str
    model: str | None
    totals: Totals
    groups: list[Group]
    items: list[Usage]
    next_cursor: str | None


class SpendSummary(Schema):
    today: Money
    last_30_days: Money
    count_30_days: int


class InviteSummary(Schema):
    code: str
    link: str
    invited_count: int
    rewards_total: Money


class Expiring(Schema):
    amount: Money = Field(description=N_("What remains of the lot."))
    expires_at: Time
    category: Literal["plan", "granted", "paid"]


class Summary(Schema):
    user_id: Uuid
    email: str
    balance: Money
    held: Money
    available: Money
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
    inviter: str = Field(description=N_("How the inviter is shown to the invitee (never their email)."))
    created_at: Time


class Reward(Schema):
    rewarded: bool
    already_rewarded: bool
    inviter_reward: Money
    invitee_reward: Money


class Quote(Schema):
    model: str
    amount: Money
    unit_price: Money
    quantity: str
    display: str


class Redeemed(Schema):
    amount: Money
    balance: Money


class Health(Schema):
    status: Literal["ok", "unavailable"]
    database: str | None = None


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
    url: str = Field(description=N_("SITE_URL/portal/<token>: signs the person in once."))
    expires_at: Time = Field(description=N_("10 minutes from now: the link works once, until then."))
