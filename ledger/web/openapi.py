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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, get_args

from flask import Blueprint, Flask, current_app, jsonify, render_template
from flask import Response as FlaskResponse
from flask_babel import gettext
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from spectree.plugins.flask_plugin import FlaskPlugin

from ledger.config import Settings
from ledger.errors import InvalidRequest, LedgerError
from ledger.i18n import N_
from ledger.models import PayType
from ledger.money import amount_pattern
from ledger.web import fields, schemas
from ledger.web.context import settings
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
        "A prepaid balance for a SaaS: charges, holds, batches, top-ups, reports. Money is always an exact "
        "decimal string in yuan. Services of the SaaS send x-internal-token; a signed-in person's browser "
        "sends its session cookie (and X-CSRFToken on POST)."
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

# Answers every route may give besides its own: refusals in SPEC 6's shape.
COMMON_REFUSALS = (422, 503)
SIGN_IN_REFUSALS = (401,)
BODY_REFUSALS = (413,)  # a body above MAX_CONTENT_LENGTH


def contract(
    *,
    ok: dict[int, type[BaseModel] | None],
    refusals: tuple[int, ...] = (),
    json: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    auth: str | None = None,
    tag: str,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a JSON route: its body or query schema, its answers by status (`ok`: the successes,
    `refusals`: the error statuses it may answer, each with the Error schema), who may call it."""
    statuses = {f"HTTP_{status}": model for status, model in ok.items()}
    for status in {*refusals, *COMMON_REFUSALS, *(SIGN_IN_REFUSALS if auth else ()), *(BODY_REFUSALS if json else ())}:
        statuses.setdefault(f"HTTP_{status}", schemas.Error)
    validated = api.validate(
        json=json,
        query=query,
        resp=Response(**statuses),  # type: ignore[arg-type]
        tags=[tag],
        security={auth: []} if auth else None,
        before=functools.partial(_refuse_invalid, model=json or query, in_query=json is None),
    )
    if json is None:
        return validated

    def declare(view: Callable[..., Any]) -> Callable[..., Any]:
        checked = validated(view)

        @functools.wraps(checked)
        def body_first(*args: Any, **kwargs: Any) -> Any:
            json_body()  # not a JSON object (or absurdly nested): its own refusal, before the schema's
            return checked(*args, **kwargs)

        return body_first

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
    )


@dataclass(frozen=True)
class InputField:
    name: str
    type: str
    required: bool
    description: str


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


def operations(doc: dict[str, Any], translate: Callable[[str], str] = str) -> list[Operation]:
    """The document as the docs page lists it: each operation with its input fields and answers, its
    words (summary, description, the fields' meanings) through `translate` (the catalogue has them:
    route docstrings are extracted by ledger.i18n.extract_blueprint, fields' meanings are marked)."""

    def words(text: str) -> str:
        return translate(text) if text else text  # gettext("") is the catalogue's header

    schemas_ = doc["components"]["schemas"]
    found = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                fields, where = _fields(schemas_[body["$ref"].rsplit("/", 1)[1]], words), "body"
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
                )
            )
    return found


def _fields(schema: dict[str, Any], words: Callable[[str], str]) -> list[InputField]:
    required = set(schema.get("required", []))
    return [
        InputField(name, _type(prop, words), name in required, words(prop.get("description", "")))
        for name, prop in schema.get("properties", {}).items()
    ]


def _type(prop: dict[str, Any], words: Callable[[str], str] = str) -> str:
    """A field's JSON type as the docs page shows it: JSON's own names, with money and arrays said."""
    if "anyOf" in prop:
        return " | ".join(_type(p, words) for p in prop["anyOf"])
    if prop.get("format") == "decimal":
        return words(N_("string (money)"))
    if prop.get("type") == "array":
        return words(N_("array of %(items)s")) % {"items": _type(prop.get("items", {}), words)}
    return str(prop.get("type") or prop.get("$ref", "").rsplit("/", 1)[-1] or words(N_("any")))


def _ref_name(answer: dict[str, Any]) -> str:
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").rsplit("/", 1)[-1]


def openapi_document(app: Flask) -> dict[str, Any]:
    """spectree's document of the app's JSON routes, with what spectree cannot say itself: the
    report's CSV, this site's top-up limits, and no default 422 schema of its own. Made once per app."""
    if "ledger.openapi" not in app.extensions:
        with app.test_request_context():
            doc = copy.deepcopy(api.spec)
        _topup_limits(doc["components"]["schemas"]["TopupBody"], settings(app))
        report = doc["paths"].get("/api/usage/report", {}).get("get")
        if report:  # spectree answers one JSON schema a status; this 200 is JSON, or CSV with format=csv
            report["responses"]["200"]["content"] = {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{_component(doc, schemas.Report)}"}},
                "text/csv": {"schema": {"type": "string", "description": "With format=csv: one row a charge."}},
            }
        app.extensions["ledger.openapi"] = doc
    return app.extensions["ledger.openapi"]


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


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
