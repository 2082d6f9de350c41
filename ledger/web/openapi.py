"""The JSON API's contract (SPEC 18): routes validated by spectree with the schemas of
ledger.web.schemas, and the OpenAPI 3.1 document made from those same schemas at
GET /api/openapi.json; GET /api/docs shows it as a page of this site (no script, no CDN).

A JSON route says what it takes and answers with `@contract(...)` under its auth decorator (so an
unauthenticated call is a 401 before its body is looked at). A body or query the schema refuses is
answered as every refusal is (SPEC 6: 422, naming the field, in the person's language), with the
code and words of the field's service (fields.RefusedAs): invalid_amount for a top-up's amount,
invalid_range for a report's day, invalid_request mostly.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any, get_args

from flask import Blueprint, Flask, current_app, jsonify, render_template
from flask import Response as FlaskResponse
from flask_babel import force_locale, gettext
from markdown_it import MarkdownIt
from markupsafe import Markup
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from spectree.plugins.flask_plugin import FlaskPlugin

from ledger.config import Settings
from ledger.errors import (
    AlreadyInvited,
    AlreadySubscribed,
    CaptureExceedsHold,
    CodeNotFound,
    HoldSettled,
    InsufficientBalance,
    InsufficientBalanceToHold,
    InvalidRange,
    InvalidRequest,
    InvalidTopupAmount,
    InviteCodeNotFound,
    InviteCycle,
    LedgerError,
    PlanNotFound,
    PlanRetired,
    RequestIdConflict,
    SelfInvite,
    SpendingLimitReached,
    TooManyPendingOrders,
    Unauthorized,
    UnknownModel,
)
from ledger.i18n import N_
from ledger.models import PayType
from ledger.money import amount_pattern
from ledger.services import events
from ledger.services.payments.xorpay import GatewayError
from ledger.web import fields, schemas
from ledger.web.context import settings
from ledger.web.errors import CsrfFailed, DatabaseUnavailable, HttpError, error_body
from ledger.web.parsing import json_body


class _FlaskPlugin(FlaskPlugin):
    """Answers are checked against their schemas in development and tests, where a drift from the
    contract should fail loudly. Not in production: there a drift would turn a done charge into a
    500, and the check cost 5 % of an internal charge's Python under load (py-spy).

    A streamed answer (the usage CSV, SPEC 8) passes through unread, in every mode: spectree reads
    every Response's whole body first (`get_data()`, whatever `skip_validation` says), which built
    a year's CSV in memory before its first byte."""

    def validate_response(self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool) -> Any:
        if isinstance(resp, FlaskResponse) and resp.is_streamed:
            return resp, None
        skip = skip_validation or settings().is_production
        return super().validate_response(resp, resp_model, skip, force_resp_serialize)


api = SpecTree(
    "flask",
    backend=_FlaskPlugin,
    mode="strict",  # the document holds the routes that declare a contract, and only them
    title="Ledger API",
    version="1",
    description=N_(
        "A prepaid balance for a SaaS: accounts for its people, charges, holds, batches, top-ups, reports, and "
        "events to its backend.\n\n"
        '- **Money** is always an exact decimal string in yuan, such as `"12.50"`: a JSON number is refused.\n'
        "- **Callers**: your backend sends the `x-internal-token` header; a signed-in person's browser sends its "
        "session cookie (and `X-CSRFToken` on POST).\n"
        '- **Refusals** are `{"error": {"code", "message", ...}}`; each operation lists its codes by status. Act '
        "on `code`: `message` is for people, in the language of `Accept-Language` (Chinese unless English is "
        "asked for).\n"
        "- **Retries**: a charge or a hold is made once per person and `request_id`; the same call again answers "
        "the first, with `replayed` true.\n"
        "- **X-Request-ID**: send one to find a call in both sides' logs; every answer carries it."
    ),
    security_schemes=[
        SecurityScheme(
            name="internal",
            data=SecuritySchemeData(type=SecureType.API_KEY, name="x-internal-token", field_in="header"),
        ),
        SecurityScheme(
            name="session", data=SecuritySchemeData(type=SecureType.API_KEY, name="session", field_in="cookie")
        ),
    ],
    annotations=False,
    naming_strategy=lambda model: model.__name__,
)

# A refusal a route declares: the LedgerError it raises (its status and code are the class's), or a
# bare status (its codes then unknown to the document: declare the errors).
Refusal = int | type[LedgerError] | LedgerError


# Answers every route may give besides its own: refusals in SPEC 6's shape.
def _common_refusals(*, auth: str | None, body: bool, query: bool) -> tuple[Refusal, ...]:
    return (
        *((InvalidRequest,) if body or query else ()),  # a field, a parameter, a body that is not a JSON object
        DatabaseUnavailable,
        *((Unauthorized,) if auth else ()),
        *((HttpError(413),) if body else ()),  # a body above MAX_CONTENT_LENGTH
        *((CsrfFailed,) if auth == "session" and body else ()),  # a signed-in person's POST without the token
    )


@dataclass(frozen=True)
class Declared:
    """What a route's `contract` says beyond spectree's: its refusals by status, and the example of
    each success answer that is not its schema's first (a capture's hold is captured)."""

    answers: tuple[int, ...]
    refusals: dict[int, tuple[Refusal, ...]]
    examples: dict[int, Any]


def contract(
    *,
    ok: dict[int, type[BaseModel] | None],
    refusals: tuple[Refusal, ...] = (),
    json: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: str | None = None,
    tag: str,
    examples: Mapping[int, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a JSON route: its body or query schema, its answers by status (`ok`: the successes,
    `refusals`: the LedgerErrors it raises, each answered with the Error schema; those of every
    route are added), who may call it, and `examples` of its answers by status where the schema's
    first would mislead."""
    by_status: dict[int, tuple[Refusal, ...]] = {}
    for refusal in (*refusals, *_common_refusals(auth=auth, body=json is not None, query=query is not None)):
        status = refusal if isinstance(refusal, int) else refusal.status
        if status not in ok:
            by_status[status] = (*by_status.get(status, ()), *(() if isinstance(refusal, int) else (refusal,)))
    declared = Declared(tuple(ok), by_status, dict(examples or {}))
    statuses = {f"HTTP_{status}": model for status, model in ok.items()}
    for status in by_status:
        statuses.setdefault(f"HTTP_{status}", schemas.Error)
    validated = api.validate(
        json=json,
        query=query,
        resp=Response(**statuses),  # type: ignore[arg-type]
        tags=[tag],
        security={auth: []} if auth else None,
        before=functools.partial(_refuse_invalid, model=json or query, in_query=json is None),
    )

    def declare(view: Callable[..., Any]) -> Callable[..., Any]:
        checked = validated(view)

        @functools.wraps(checked)
        def body_first(*args: Any, **kwargs: Any) -> Any:
            json_body()  # not a JSON object (or absurdly nested): its own refusal, before the schema's
            return checked(*args, **kwargs)

        declaring = checked if json is None else body_first
        declaring.ledger_contract = declared  # type: ignore[attr-defined]  # kept by the decorators above (wraps)
        return declaring

    return declare


def _refuse_invalid(
    req: Any,
    _resp: Any,
    error: ValidationError | None,
    _instance: Any,
    *_: Any,
    model: type[BaseModel] | None,
    in_query: bool,
) -> None:
    """A request the schema refuses is a SPEC 6 refusal, worded as the route's service words it."""
    if error is None:
        return
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else None
    given = req.args if in_query else (req.get_json(silent=True) or {})
    raise _refusal(first["type"], field, model, given)


def _refusal(kind: str, field: str | None, model: type[BaseModel] | None, given: Mapping[str, Any]) -> LedgerError:
    """The refusal of the first field the schema refused: what the field's service check says of its
    value (fields.RefusedAs), else a plain word by the kind of error."""
    if field is None:
        return InvalidRequest(N_("Send a JSON object as the body (Content-Type: application/json)."))
    info = _field(model, field)
    refused_as = next((m for m in info.metadata if isinstance(m, fields.RefusedAs)), None) if info else None
    if refused_as is not None:
        try:
            refused_as.check(given.get(field), field, given)
        except LedgerError as refused:
            return refused
    if kind == "literal_error" and info is not None:
        return InvalidRequest(N_("Choose one of: %(choices)s."), field=field, choices=", ".join(_choices(info)))
    bounds = _length_bounds(info)
    if bounds and kind.startswith("string_too"):
        return InvalidRequest(N_("Enter %(min)d to %(max)d characters."), field=field, min=bounds[0], max=bounds[1])
    return InvalidRequest(N_("Enter text."), field=field)


def _field(model: type[BaseModel] | None, name: str) -> FieldInfo | None:
    """The schema's field of that name (as sent: its alias, if it has one)."""
    fields = model.model_fields if model else {}
    return next((info for key, info in fields.items() if (info.alias or key) == name), None)


def _choices(info: FieldInfo) -> list[str]:
    """The values a Literal field takes."""
    return [str(choice) for choice in get_args(info.annotation)]


def _length_bounds(info: FieldInfo | None) -> tuple[int, int] | None:
    """The (min, max) length the schema sets on a text field."""
    if info is None:
        return None
    low = next((m.min_length for m in info.metadata if getattr(m, "min_length", None) is not None), None)
    high = next((m.max_length for m in info.metadata if getattr(m, "max_length", None) is not None), None)
    return None if low is None and high is None else (low or 0, high or 10**9)


bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def document() -> Any:
    return jsonify(openapi_document(current_app))


@bp.get("/api/docs")
def docs() -> Any:
    doc = openapi_document(current_app)
    translate = gettext  # by another name: babel would read gettext(doc["info"]...) as a message to extract
    return render_template(
        "site/api_docs.html",
        doc=doc,
        description=translate(doc["info"]["description"]),
        operations=operations(doc, translate=translate),
        webhooks=webhooks(doc, translate=translate),
        events_intro=translate(EVENTS_INTRO),
    )


EVENTS_INTRO = N_(
    'Ledger posts each event to your `EVENTS_URL` as JSON `{"id", "type", "created_at", "data"}`, signed in the '
    '`X-Ledger-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` keyed with '
    "`EVENTS_SECRET`. Check the signature on the raw body, answer 2xx at once, and dedupe by `id`: an event is "
    "posted again until it is delivered (for 24 hours), and `flask events replay` sends past events again. `data` "
    "holds `user_id`, the id of the resource, the amount, and the person's `balance` and `available` after the "
    "change.\n\nTo test a receiver: `flask --app wsgi events send-test TYPE` posts the sample of that type shown "
    "below, signed with your `EVENTS_SECRET`."
)


# Markdown as the docs page shows it: our own text, with any raw HTML in it shown as text (escaped)
# and links only to safe schemes (markdown-it's validateLink).
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


@bp.app_template_filter("markdown")
def markdown_html(text: str, inline: bool = False) -> Markup:
    """`text` (Markdown) as HTML: a block of paragraphs and lists, or `inline` (no paragraph)."""
    text = str(text)  # as written: a translation Jinja marked safe is still our plain text, to escape here
    return Markup(_MARKDOWN.renderInline(text) if inline else _MARKDOWN.render(text))  # noqa: S704 - escaped by markdown-it


# --- the document's refusals: what each `error.code` means ---------------------------------------------

MEANINGS: dict[str, str] = {
    "invalid_request": N_("A field is missing or malformed, or the body is not a JSON object: `field` names it."),
    "unauthorized": N_("No valid x-internal-token header (services), or not signed in (a person's routes)."),
    "csrf_failed": N_("The X-CSRFToken header is missing or stale: read it again from a page's csrf-token meta tag."),
    "request_entity_too_large": N_("The body is larger than the server takes."),
    "database_unavailable": N_(
        "The database is briefly unreachable: try again after Retry-After seconds, with the same request_id "
        "(a charge or a hold is never made twice)."
    ),
    "insufficient_balance": N_(
        "The available amount (balance minus holds) is short: `balance` and `available` say by how much. "
        "Nothing was charged or held."
    ),
    "account_disabled": N_("An admin disabled this account: it cannot be charged (its money stays)."),
    "user_not_found": N_("No person has this id."),
    "request_id_conflict": N_(
        "This request_id was used before with another amount or model (a charge or a hold): use a new one for "
        "a new charge."
    ),
    "hold_not_found": N_("No hold has this id."),
    "hold_settled": N_("The hold was released, expired, or captured with another amount: `hold_status` says which."),
    "capture_exceeds_hold": N_("The capture is more than the hold: `amount` and `held` say both."),
    "invalid_amount": N_(
        "The amount is not an exact decimal with at most 2 decimals within this site's top-up limits for the method."
    ),
    "too_many_pending_orders": N_("Too many unpaid top-up orders are open: pay one, or wait until they expire."),
    "too_many_requests": N_("Too many attempts: wait a while (Retry-After, when given) and try again."),
    "gateway_error": N_("The payment gateway refused to create the order (it is marked failed): try again later."),
    "not_found": N_("It does not exist, or it is not the signed-in person's."),
    "code_not_found": N_("No code matches (spaces, dashes and case do not matter)."),
    "code_used": N_("The code has been redeemed already."),
    "code_expired": N_("The code's last day has passed."),
    "code_disabled": N_("An admin disabled the code or its batch."),
    "invite_code_not_found": N_("No one has this invite code."),
    "already_invited": N_("The person has an inviter already."),
    "self_invite": N_("It is the person's own invite code."),
    "invite_cycle": N_("The code belongs to someone the person invited, directly or through others."),
    "invite_not_found": N_("Nobody invited this person."),
    "invalid_range": N_("A day is not YYYY-MM-DD, or the range is reversed or longer than a year."),
    "unknown_model": N_("No console model has this name."),
    "user_conflict": N_("The email or the external_id belongs to another account."),
    "admin_account": N_("The account is an admin's: admins sign in with their password, not through a portal link."),
    "username_taken": N_("This username is taken."),
    "plan_not_found": N_("No plan has this code."),
    "plan_retired": N_("The plan is retired: it sells no new subscription (those it has run to their period's end)."),
    "subscription_not_found": N_("No subscription has this id."),
    "already_subscribed": N_(
        "The person holds this plan already (active, or cancelled until its period ends): `subscription_id` names "
        "it. Nothing was charged."
    ),
    "spending_limit_reached": N_(
        "The request would take a period's spending from the wallet over the person's spending limit: `limit`, "
        "`spent` (before this request), `period` (day or month) and `resets_at` say which and until when. Nothing "
        "was charged or held."
    ),
}

# Refusals whose example needs figures (their messages have placeholders).
_EXAMPLE_REFUSALS: dict[type[LedgerError], Callable[[], LedgerError]] = {
    InvalidRequest: lambda: InvalidRequest(N_("Enter text."), field="request_id"),
    InsufficientBalance: lambda: InsufficientBalance(Decimal("3.00"), Decimal("1.00")),
    InsufficientBalanceToHold: lambda: InsufficientBalanceToHold(Decimal("3.00"), Decimal("1.00")),
    SpendingLimitReached: lambda: SpendingLimitReached(
        "day", Decimal("20.00"), Decimal("19.90"), datetime.fromisoformat("2026-12-09T00:00:00+08:00")
    ),
    RequestIdConflict: lambda: RequestIdConflict(request_id="job-42", amount="0.20", model="image-studio-v2"),
    HoldSettled: lambda: HoldSettled(hold_status="expired"),
    CaptureExceedsHold: lambda: CaptureExceedsHold(field="amount", amount=Decimal("9.00"), held=Decimal("8.00")),
    InvalidTopupAmount: lambda: InvalidTopupAmount(field="amount", minimum=Decimal("1.00"), maximum=Decimal("1000.00")),
    TooManyPendingOrders: lambda: TooManyPendingOrders(count=5, minutes=30),
    GatewayError: lambda: GatewayError("app_off"),
    InvalidRange: lambda: InvalidRange(N_("A range covers at most %(days)d days."), field="from", days=366),
    UnknownModel: lambda: UnknownModel(field="model"),
    CodeNotFound: lambda: CodeNotFound(field="code"),
    InviteCodeNotFound: lambda: InviteCodeNotFound(field="code"),
    SelfInvite: lambda: SelfInvite(field="code"),
    InviteCycle: lambda: InviteCycle(field="code"),
    AlreadyInvited: lambda: AlreadyInvited(field="code"),
    AlreadySubscribed: lambda: AlreadySubscribed("b5e2c8d1-4f3a-4a7b-9c60-2d8e1f7a3b94"),
    PlanNotFound: lambda: PlanNotFound(field="plan"),
    PlanRetired: lambda: PlanRetired(field="plan"),
}


def _example_refusal(refusal: type[LedgerError] | LedgerError) -> LedgerError:
    if isinstance(refusal, LedgerError):
        return refusal
    return _EXAMPLE_REFUSALS.get(refusal, refusal)()


def _refusal_response(status: int, refusals: tuple[Refusal, ...]) -> dict[str, Any]:
    """A refusal status of an operation: its codes, each with what it means and an example body."""
    examples: dict[str, Any] = {}
    for refusal in refusals:
        assert not isinstance(refusal, int)
        error = _example_refusal(refusal)
        examples.setdefault(error.code, {"summary": MEANINGS[error.code], "value": {"error": error_body(error)}})
    codes = "\n".join(f"- `{code}`: {example['summary']}" for code, example in examples.items())
    return {
        "description": f"{HTTPStatus(status).phrase}. `error.code` is one of:\n\n{codes}",
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/XRequestId"}},
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "examples": examples},
        },
    }


# --- headers ---------------------------------------------------------------------------------------------

REQUEST_ID = N_(
    "Your id for this request, for the logs of both sides: kept when it is 1 to 128 characters of A-Z, a-z, 0-9 "
    "and . _ - (else Ledger makes one), and echoed in the answer's X-Request-ID. It is not the request_id of a "
    "charge: only that one makes a retry safe."
)
ANSWER_REQUEST_ID = N_("The request's id: yours when you sent a valid one, else the one Ledger made.")
SIGNATURE = N_(
    't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with EVENTS_SECRET>. Check it against the raw '
    "body before parsing it, and refuse a t more than 5 minutes away from your clock (a replayed post)."
)
EVENT_REQUEST_ID = N_("The id of the request that caused the event, else the event's id.")

COMPONENTS = {
    "parameters": {
        "XRequestId": {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "description": REQUEST_ID,
            "schema": {"type": "string"},  # any value is taken: an unusable one is replaced, never refused
        },
        "XLedgerSignature": {
            "name": events.SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "description": SIGNATURE,
            "schema": {"type": "string", "pattern": "^t=[0-9]+(,v1=[0-9a-f]{64})+$"},
            "example": "t=1765160100,v1=5f0c8d6b2e4a7c91f3b5d8e0a2c4f6b8d0e2a4c6f8b0d2e4a6c8f0b2d4e6a8c0",
        },
        "XEventRequestId": {
            "name": "X-Request-ID",
            "in": "header",
            "required": True,
            "description": EVENT_REQUEST_ID,
            "schema": {"type": "string"},
        },
    },
    "headers": {
        "XRequestId": {
            "description": ANSWER_REQUEST_ID,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
        },
    },
}


# --- webhooks: the events Ledger posts to EVENTS_URL ------------------------------------------------------

DELIVERED = N_("Delivered: any 2xx. Answer at once and do the work after (Ledger waits 3 s to connect, 5 s to read).")
RETRIED = N_(
    "Anything else, or no answer in time: posted again with backoff (10 s, 20 s, ... at most an hour apart) for "
    "24 hours. Every post of an event carries the same id: dedupe by it."
)


def _webhooks(doc: dict[str, Any]) -> dict[str, Any]:
    """SPEC 16's events as OpenAPI 3.1 `webhooks`: one a type, its body's schema and sample (the
    sample `flask events send-test` posts), the signature header."""
    hooks = {}
    for type_, hook in schemas.WEBHOOKS.items():
        name = _component(doc, hook.body)
        hooks[type_.value] = {
            "post": {
                "summary": hook.summary,
                "operationId": f"event_{type_.value.replace('.', '_')}",
                "tags": ["events"],
                "parameters": [
                    {"$ref": "#/components/parameters/XLedgerSignature"},
                    {"$ref": "#/components/parameters/XEventRequestId"},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{name}"},
                            "examples": {"sample": {"value": events.sample_event(type_)}},
                        }
                    },
                },
                "responses": {"2XX": {"description": DELIVERED}, "default": {"description": RETRIED}},
            }
        }
    return hooks


# --- the document ----------------------------------------------------------------------------------------


def openapi_document(app: Flask) -> dict[str, Any]:
    """spectree's document of the app's JSON routes, with what spectree cannot say itself: the
    report's CSV, this site's top-up limits, no default 422 schema of its own, each refusal's codes,
    the examples of answers, the X-Request-ID header and the events as `webhooks`. Made once per app,
    in English (the docs page translates its words)."""
    if "ledger.openapi" not in app.extensions:
        with app.test_request_context(), force_locale("en"):
            doc = copy.deepcopy(api.spec)
            _topup_limits(doc["components"]["schemas"]["TopupBody"], settings(app))
            report = doc["paths"].get("/api/usage/report", {}).get("get")
            if report:  # spectree answers one JSON schema a status; this 200 is JSON, or CSV with format=csv
                report["responses"]["200"]["content"] = {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{_component(doc, schemas.Report)}"}},
                    "text/csv": {"schema": {"type": "string", "description": "With format=csv: one row a charge."}},
                }
            declared = _declarations(app)
            for path, method, op in _each_operation(doc):
                _describe(op, declared.get((path, method)))
            doc["components"].update(copy.deepcopy(COMPONENTS))
            doc["webhooks"] = _webhooks(doc)
            doc["tags"] = [*doc.get("tags", []), {"name": "events", "description": "Posted to EVENTS_URL."}]
            _share_nested_schemas(doc)
            _examples_as_written(doc["components"]["schemas"])
        app.extensions["ledger.openapi"] = doc
    return app.extensions["ledger.openapi"]


def _each_operation(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, methods in doc["paths"].items() for method, op in methods.items()]


def _declarations(app: Flask) -> dict[tuple[str, str], Declared]:
    """Each route's `contract` declaration by (document path, method)."""
    found = {}
    for rule in app.url_map.iter_rules():
        declared = getattr(app.view_functions.get(rule.endpoint), "ledger_contract", None)
        if declared is not None:
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            for method in rule.methods or ():
                found[(path, method.lower())] = declared
    return found


def _describe(op: dict[str, Any], declared: Declared | None) -> None:
    """An operation's refusals with their codes, its answers' examples, the X-Request-ID header."""
    op.setdefault("parameters", []).append({"$ref": "#/components/parameters/XRequestId"})
    for response in op["responses"].values():
        response.setdefault("headers", {})["X-Request-ID"] = {"$ref": "#/components/headers/XRequestId"}
    if declared is None:
        return
    for status in [s for s in op["responses"] if int(s) not in (*declared.answers, *declared.refusals)]:
        del op["responses"][status]  # spectree's own 422, on a route that takes no input
    for status, refusals in declared.refusals.items():
        op["responses"][str(status)] = _refusal_response(status, refusals)
    for status, example in declared.examples.items():
        op["responses"][str(status)]["content"]["application/json"]["examples"] = {"example": {"value": example}}


def _share_nested_schemas(doc: dict[str, Any]) -> None:
    """spectree names the models a schema holds after it ("Summary.Order"): each is the same as the
    top-level one of that name, or as its namesakes; one schema a model makes a generated client
    simpler. References follow."""
    components = doc["components"]["schemas"]
    nested: dict[str, list[str]] = {}
    for name in components:
        if "." in name:
            nested.setdefault(name.rsplit(".", 1)[1], []).append(name)
    short_refs = {
        f"#/components/schemas/{n}": f"#/components/schemas/{short}" for short, names in nested.items() for n in names
    }
    renamed = {}
    for short, names in nested.items():
        # the same shape once their own references are read by the short names too
        shapes = [_following(components[n], short_refs) for n in [*names, *([short] if short in components else [])]]
        if all(shape == shapes[0] for shape in shapes):
            components.setdefault(short, components[names[0]])
            renamed |= {f"#/components/schemas/{n}": f"#/components/schemas/{short}" for n in names}
            for n in names:
                del components[n]
    doc.update(_following(doc, renamed))


def _examples_as_written(components: dict[str, Any]) -> None:
    """Each schema's examples with their keys in the order they were written (pydantic sorts them)."""
    models = [m for m in vars(schemas).values() if isinstance(m, type) and issubclass(m, BaseModel)]
    models += [hook.body for hook in schemas.WEBHOOKS.values()]
    for model in models:
        written = (model.model_config.get("json_schema_extra") or {}).get("examples")  # type: ignore[union-attr]
        if model.__name__ in components and written:
            components[model.__name__]["examples"] = copy.deepcopy(written)


def _following(node: Any, renamed: dict[str, str]) -> Any:
    """`node` with its references renamed."""
    if isinstance(node, dict):
        return {k: renamed.get(v, v) if k == "$ref" else _following(v, renamed) for k, v in node.items()}
    if isinstance(node, list):
        return [_following(value, renamed) for value in node]
    return node


def _topup_limits(body: dict[str, Any], config: Settings) -> None:
    """A top-up's amount as this site takes it (payments.methods.parse_topup_amount): from TOPUP_MIN to
    TOPUP_MAX with Alipay (the default), to TOPUP_MAX_WECHAT with WeChat Pay (`native`)."""

    def within(maximum: Decimal) -> str:
        return amount_pattern(places=fields.TOPUP_PLACES, minimum=config.TOPUP_MIN, maximum=maximum)

    body["properties"]["amount"]["pattern"] = within(max(config.TOPUP_MAX, config.TOPUP_MAX_WECHAT))
    body["if"] = {"properties": {"pay_type": {"const": PayType.NATIVE.value}}, "required": ["pay_type"]}
    body["then"] = {"properties": {"amount": {"pattern": within(config.TOPUP_MAX_WECHAT)}}}
    body["else"] = {"properties": {"amount": {"pattern": within(config.TOPUP_MAX)}}}


def _component(doc: dict[str, Any], model: type[BaseModel]) -> str:
    """Add `model` (and the models it holds) to the document's schemas; its name."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components = doc["components"]["schemas"]
    for name, nested in schema.pop("$defs", {}).items():
        components.setdefault(name, nested)
    components[model.__name__] = schema
    return model.__name__


# --- the document as /api/docs shows it -------------------------------------------------------------------


@dataclass(frozen=True)
class InputField:
    name: str
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Answer:
    """A success answer: its status, its fields (those of the objects it holds too), an example."""

    status: str
    fields: list[InputField]
    example: str | None
    note: str = ""


@dataclass(frozen=True)
class Refused:
    """One `error.code` an operation may answer with a status."""

    status: str
    code: str
    meaning: str
    carries: list[str]  # the error's fields besides code and message


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    tag: str
    summary: str
    description: str
    auth: str | None
    fields: list[InputField]
    where: str  # "body" or "query"
    answers: list[tuple[str, str]]  # (status, schema name)
    example: str | None = None  # of the request body
    successes: list[Answer] = dataclass_field(default_factory=list)
    refusals: list[Refused] = dataclass_field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"{self.method.lower()}-{re.sub(r'[^a-z0-9]+', '-', self.path.lower()).strip('-')}"


@dataclass(frozen=True)
class Event:
    """A webhook as the docs page lists it."""

    type: str
    summary: str
    fields: list[InputField]
    example: str


def operations(doc: dict[str, Any], translate: Callable[[str], str] = str) -> list[Operation]:
    """The document as the docs page lists it: each operation with its input fields, request example,
    answers (fields and example) and refusals (codes and meanings), its words (summary, description,
    the fields' meanings, the codes' meanings) through `translate` (the catalogue has them: route
    docstrings are extracted by ledger.i18n.extract_blueprint, the rest is marked)."""
    words = _words(translate)
    components = doc["components"]["schemas"]
    found = []
    for path, method, op in _each_operation(doc):
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        example = None
        if body:
            schema = _resolved(body, components)
            fields, where, example = _fields(schema, words), "body", _shown(schema.get("examples", [None])[0])
        else:
            query = [q for q in op.get("parameters", []) if q.get("in") == "query"]
            fields = [
                InputField(
                    q["name"],
                    _type(q.get("schema", {}), words),
                    q.get("required", False),
                    words(q.get("description", "")),
                )
                for q in query
            ]
            where = "query"
        answers = [(status, _ref_name(answer)) for status, answer in sorted(op["responses"].items())]
        successes, refusals = [], []
        for status, answer in sorted(op["responses"].items()):
            content = answer.get("content", {}).get("application/json", {})
            if _ref_name(answer) == "Error":
                refusals += [
                    Refused(status, code, words(example["summary"]), _carried(example["value"]["error"]))
                    for code, example in content.get("examples", {}).items()
                ]
            elif content:
                successes.append(_answer(status, answer, components, words))
        summary, _, description = (op.get("summary") or "").partition("\n")
        found.append(
            Operation(
                method.upper(),
                path,
                (op.get("tags") or [""])[0],
                words(summary.strip()),
                words((op.get("description") or description).strip()),
                next(iter(op["security"][0]), None) if op.get("security") else None,
                fields,
                where,
                answers,
                example,
                successes,
                refusals,
            )
        )
    return found


def webhooks(doc: dict[str, Any], translate: Callable[[str], str] = str) -> list[Event]:
    """The document's webhooks as the docs page lists them: each event type, when it is sent, its
    body's fields (those of `data` too) and its sample."""
    words, components = _words(translate), doc["components"]["schemas"]
    found = []
    for type_, hook in doc.get("webhooks", {}).items():
        post = hook["post"]
        content = post["requestBody"]["content"]["application/json"]
        schema = _resolved(content["schema"], components)
        sample = next(iter(content["examples"].values()))["value"]
        found.append(Event(type_, words(post["summary"]), _fields(schema, words, components), _shown(sample) or ""))
    return found


def _words(translate: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: translate(text) if text else text  # gettext("") is the catalogue's header


def _answer(status: str, answer: dict[str, Any], components: dict[str, Any], words: Callable[[str], str]) -> Answer:
    content = answer["content"]["application/json"]
    schema = _resolved(content["schema"], components)
    examples = content.get("examples")
    example = next(iter(examples.values()))["value"] if examples else schema.get("examples", [None])[0]
    note = words(N_("Or CSV (text/csv) with format=csv.")) if "text/csv" in answer["content"] else ""
    return Answer(status, _fields(schema, words, components), _shown(example), note)


def _resolved(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, when `schema` is a reference to it."""
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


def _shown(example: Any) -> str | None:
    return None if example is None else json.dumps(example, indent=2, ensure_ascii=False)


def _carried(error: dict[str, Any]) -> list[str]:
    return [name for name in error if name not in ("code", "message")]


# The descriptions every field of a kind shares (money, ids, times): an answer's table leaves them out,
# its type column says as much.
_GENERIC = {
    (TypeAdapter(kind).json_schema().get("description") or "") for kind in (fields.Money, fields.Uuid, fields.Time)
}


def _fields(
    schema: dict[str, Any],
    words: Callable[[str], str],
    components: dict[str, Any] | None = None,
    prefix: str = "",
) -> list[InputField]:
    """A schema's fields; with `components`, an answer's: the fields of the objects it holds follow
    their field (`drawn.paid`, `results[].status`), and generic descriptions are left out."""
    required = set(schema.get("required", []))
    found = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.get("description", "")
        if components is not None and description in _GENERIC:
            description = ""
        found.append(InputField(prefix + name, _type(prop, words), name in required, words(description)))
        held = _held_object(prop, components) if components is not None and not prefix else None
        if held is not None:
            inner, many = held
            found += _fields(inner, words, components, prefix=f"{name}[]." if many else f"{name}.")
    return found


def _held_object(prop: dict[str, Any], components: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """The object schema a field holds (itself, or each item of an array), if any."""
    for option in [prop, *prop.get("anyOf", [])]:
        many = option.get("type") == "array"
        target = option.get("items", {}) if many else option
        if "$ref" in target:
            inner = _resolved(target, components)
            if inner.get("properties"):
                return inner, many
    return None


def _type(prop: dict[str, Any], words: Callable[[str], str] = str) -> str:
    """A field's JSON type as the docs page shows it: JSON's own names, with money, arrays and the
    values of an enumeration said."""
    if "anyOf" in prop:
        return " | ".join(_type(p, words) for p in prop["anyOf"])
    if prop.get("format") == "decimal":
        return words(N_("string (money)"))
    if prop.get("type") == "array":
        return words(N_("array of %(items)s")) % {"items": _type(prop.get("items", {}), words)}
    if "enum" in prop or "const" in prop:
        return " | ".join(f'"{value}"' for value in prop.get("enum", [prop.get("const")]))
    if "$ref" in prop:
        return "object"
    return str(prop.get("type") or words(N_("any")))


def _ref_name(answer: dict[str, Any]) -> str:
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").rsplit("/", 1)[-1]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
