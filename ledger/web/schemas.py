"""The JSON API's request and response schemas (pydantic), one per shape of SPEC 6. They validate
each JSON route's input before its view runs and its answer after (ledger.web.openapi), and the
OpenAPI document at /api/openapi.json is made from them: the document is what the code checks.

The services still check every value (exact money, UUIDs, bounds) and word the refusals; a schema
refuses only what its service would refuse too, and says the same field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints

from ledger.i18n import N_
from ledger.money import EXACT_DECIMAL

Money = Annotated[
    str,
    Field(
        pattern=f"^{EXACT_DECIMAL.pattern}$",
        description=N_('Money as an exact decimal string in yuan (CNY), such as "12.50": never a JSON number.'),
        examples=["12.50"],
    ),
]
Uuid = Annotated[
    str,
    Field(
        description=N_("A UUID."),
        examples=["4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10"],
        json_schema_extra={"format": "uuid"},
    ),
]
Time = Annotated[str, Field(description=N_("ISO 8601 with the offset of the person's (or site's) time zone."))]
RequestId = Annotated[
    str,
    Field(min_length=1, max_length=128, description=N_("Yours: a repeat of the same id is a replay, charged once.")),
]
Model = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),  # counted as the service does
    Field(description=N_("The paid feature's model name.")),
]
Params = Annotated[dict[str, Any] | None, Field(description=N_("Anything about the use, kept with it (JSON object)."))]


class Schema(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown fields are ignored, as the views always did


# --- requests -------------------------------------------------------------------------------------


class DeductBody(Schema):
    user_id: Uuid
    amount: Money
    model: Model
    request_id: RequestId
    params: Params = None


class BatchBody(Schema):
    charges: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000, description=N_("1 to 1,000 objects with the fields of a deduct.")
    )


class HoldBody(DeductBody):
    ttl_seconds: int | str | None = Field(
        None, description=N_("How long the money is held: 60 to 86,400 seconds (default 3,600), a whole number.")
    )


class CaptureBody(Schema):
    amount: Money


class EmptyBody(Schema):
    pass


class CodeBody(Schema):
    code: str = Field(max_length=200, description=N_("As typed: spaces, dashes and case do not matter."))


class InviteeBody(Schema):
    invitee_id: Uuid


class TopupBody(Schema):
    amount: Money
    pay_type: Literal["alipay", "native"] | None = Field(
        None, description=N_("alipay (default) or native: WeChat Pay.")
    )


class ReportQuery(Schema):
    from_: str | None = Field(None, alias="from", description=N_("First day, YYYY-MM-DD (default: 29 days ago)."))
    to: str | None = Field(None, description=N_("Last day, YYYY-MM-DD (default: today)."))
    group_by: Literal["day", "model"] | None = None
    model: str | None = None
    format: Literal["json", "csv"] | None = None
    cursor: str | None = None
    limit: str | None = Field(None, description=N_("Items a page: 1 to 500."))


class QuoteQuery(Schema):
    model: str | None = Field(
        None, description=N_("A model of the console (needed); its parameters come as more fields.")
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
    usage_id: Uuid
    model: str
    amount: Money
    balance_after: Money
    request_id: str
    params: dict[str, Any]
    created_at: Time


class Charge(Usage):
    user_id: Uuid
    balance: Money
    replayed: bool


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


class BatchAnswer(Schema):
    results: list[BatchItem]


class Hold(Schema):
    hold_id: Uuid
    user_id: Uuid
    amount: Money
    request_id: str
    model: str
    params: dict[str, Any]
    status: Literal["active", "captured", "released", "expired"]
    created_at: Time
    expires_at: Time
    settled_at: Time | None
    captured_amount: Money | None
    released_amount: Money | None
    usage_id: Uuid | None


class HoldAnswer(Hold):
    balance: Money
    available: Money
    replayed: bool


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


class Summary(Schema):
    user_id: Uuid
    email: str
    balance: Money
    held: Money
    available: Money
    currency: Literal["CNY"]
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
