"""schemathesis over every operation of /api/openapi.json (SPEC 18), in-process against the WSGI app,
as a service of the SaaS (x-internal-token) and as a signed-in person (session cookie and CSRF
token) at once. Whatever the generated input: no 5xx, no status or body outside the document; input
the document admits is taken (positive_data_acceptance: a 2xx, or one of the operation's business
refusals below), and input it does not admit is refused (negative_data_rejection)."""

import dataclasses
import functools
import json
import re
import uuid

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from werkzeug import Response

from ledger.services.growth import codes
from tests.factories import UserFactory
from tests.helpers import INTERNAL_KEY, XORPAY_AID, AuthActions

# What an operation may answer to input its document admits besides a 2xx: the refusals that depend
# on the state of things, not on the input's form, as (status, code) or (status, code, field).
BUSINESS_REFUSALS: dict[str, set[tuple]] = {
    "POST /api/billing/deduct": {(402, "insufficient_balance"), (409, "request_id_conflict")},
    "POST /api/billing/deduct/batch": set(),  # each item's refusal is in its 200 answer
    "POST /api/billing/holds": {(402, "insufficient_balance"), (409, "request_id_conflict")},
    "GET /api/billing/holds/{hold_id}": {(404, "hold_not_found")},
    "POST /api/billing/holds/{hold_id}/capture": {(404, "hold_not_found")},
    "POST /api/billing/holds/{hold_id}/release": {(404, "hold_not_found")},
    "GET /api/billing/summary": set(),
    "POST /api/codes/redeem": {(404, "code_not_found")},
    "GET /api/console/quote": set(),
    "POST /api/invites/register": {(404, "invite_code_not_found", "code")},
    "POST /api/invites/reward": {(404, "invite_not_found")},
    "POST /api/payments/create": set(),
    # A code of no plan (none is made here), or one the person holds, retired, or cannot pay.
    "POST /api/plans/subscribe": {
        (404, "plan_not_found"),
        (409, "already_subscribed"),
        (410, "plan_retired"),
        (402, "insufficient_balance"),
    },
    "POST /api/plans/subscriptions/{subscription_id}/cancel": {(404, "subscription_not_found")},
    "GET /api/payments/{transaction_id}": {(404, "not_found")},
    # A range the two days (or today) make: reversed, over 366 days, or past 1970..9999; and a cursor
    # this server did not give (it is opaque, as an id of nothing is).
    "GET /api/usage/report": {
        (422, "invalid_range", "from"),
        (422, "invalid_range", "to"),
        (422, "invalid_request", "cursor"),
    },
    # An email the address check refuses though JSON Schema's "email" admits it; a username of two
    # writing systems; a taken one; an email or external_id of another account.
    "POST /api/users": {
        (409, "user_conflict"),
        (409, "username_taken"),
        (422, "invalid_request", "email"),
        (422, "invalid_request", "username"),
    },
    "GET /api/users": {(404, "user_not_found"), (422, "invalid_request")},  # none or both of the two keys
    "GET /api/users/{user_id}": {(404, "user_not_found")},
    # A return_url off PORTAL_RETURN_HOSTS (a setting, not a form).
    "POST /api/users/{user_id}/portal": {(404, "user_not_found"), (422, "invalid_request", "return_url")},
    "GET /healthz": set(),
}
# How input the document does not admit is refused: 422 (SPEC 6), or 404 for a path no route has. A
# batch whose items the document does not admit is answered item by item (SPEC 12): see batch_answers.
BATCH = "POST /api/billing/deduct/batch"
REFUSED = {"GET /api/payments/{transaction_id}": ["404"], BATCH: ["200", "422"]}
CANONICAL_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
EXAMPLES = 25  # of each kind, for each operation


def config() -> SchemathesisConfig:
    operations = [
        {
            "include-name": name,
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ["2xx", *sorted({str(r[0]) for r in refusals})]},
                "negative_data_rejection": {"expected-statuses": REFUSED.get(name, ["422"])},
            },
        }
        for name, refusals in BUSINESS_REFUSALS.items()
    ]
    return SchemathesisConfig.from_dict({"operations": operations})


def business_refusal_only(ctx, response, case) -> bool | None:
    """A 4xx to input the document admits is one of the operation's business refusals, by its code."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not 400 <= response.status_code < 500:
        return None
    error = json.loads(response.content)["error"]
    said = {(response.status_code, error["code"]), (response.status_code, error["code"], error.get("field"))}
    assert said & BUSINESS_REFUSALS[case.operation.label], f"{case.operation.label} refused schema-valid input: {error}"
    return None


def batch_answers(ctx, response, case) -> bool | None:
    """SPEC 12, as the document says it: a batch is refused whole (422) exactly when its `charges` is
    not a list of 1 to 1,000 objects; otherwise each item is answered in its place, with
    invalid_request exactly when the document's DeductBody does not admit it."""
    if case.operation.label != BATCH:
        return None
    charges = case.body.get("charges") if isinstance(case.body, dict) else None
    listed = isinstance(charges, list) and 1 <= len(charges) <= 1000 and all(isinstance(c, dict) for c in charges)
    assert response.status_code == (200 if listed else 422), f"a batch of {charges!r} answered {response.status_code}"
    if not listed:
        return None
    results = json.loads(response.content)["results"]
    assert [r["index"] for r in results] == list(range(len(charges)))
    admitted = deduct_body(case.operation.schema.raw_schema).is_valid
    for item, result in zip(charges, results, strict=True):
        assert (result["status"] == "invalid_request") != admitted(item), f"{item!r} answered {result}"
    return None


@functools.cache
def _deduct_body(document: str):
    components = json.loads(document)["components"]
    return jsonschema_rs.validator_for({"$ref": "#/components/schemas/DeductBody", "components": components})


def deduct_body(document: dict):
    """The document's DeductBody, as a validator."""
    return _deduct_body(json.dumps(document, sort_keys=True))


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
BY_MODE = {
    GenerationMode.POSITIVE: [*CHECKS, positive_data_acceptance, business_refusal_only, batch_answers],
    GenerationMode.NEGATIVE: [*CHECKS, negative_data_rejection, batch_answers],
}


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config())


@pytest.fixture
def gateway(xorpay):
    """XorPay says yes to every top-up, each with an order id of its own."""

    def created(_request):
        body = {
            "status": "ok",
            "aoid": uuid.uuid4().hex,
            "expires_in": "1800",
            "info": {"qr": "https://qr.alipay.com/x"},
        }
        return Response(json.dumps(body), content_type="application/json")

    xorpay.server.expect_request(f"/api/pay/{XORPAY_AID}", method="POST").respond_with_handler(created)
    return xorpay


@pytest.fixture
def credentials(app, session) -> dict[str, dict[str, str]]:
    """Both kinds of caller in one set of headers: the internal token, and a person's session."""
    client = app.test_client()
    auth = AuthActions(client)
    auth.login(UserFactory(balance="50.00"))
    token = auth.csrf_token("/")
    cookie = client.get_cookie("session")
    assert cookie is not None
    return {"headers": {"x-internal-token": INTERNAL_KEY, "X-CSRFToken": token}, "cookies": {"session": cookie.value}}


@pytest.fixture
def unlimited(app, monkeypatch):
    """No limit that counts earlier calls answers in place of the input's own refusal: pending top-ups
    and unknown codes pile up over the examples."""
    monkeypatch.setitem(app.config, "LEDGER", dataclasses.replace(app.config["LEDGER"], TOPUP_MAX_PENDING=10**6))
    monkeypatch.setattr(codes, "UNKNOWN_TRIES", 10**6)


def takes_input(operation) -> bool:
    """Has the operation any input the document could refuse (a body, a query, a constrained path)?"""
    definition = operation.definition.raw
    parameters = definition.get("parameters", [])
    # (a header every operation documents, X-Request-ID, is a reference: taken whatever its value)
    constrained = any(p.get("in") == "path" and {"format", "pattern"} & set(p.get("schema", {})) for p in parameters)
    return "requestBody" in definition or any(p.get("in") == "query" for p in parameters) or constrained


def test_the_api_keeps_its_document(api_schema, credentials, gateway, unlimited):
    # Each operation in turn with hypothesis (schemathesis's own pytest plugin needs pytest internals
    # this pytest no longer has).
    payer = UserFactory(balance="1000000.00")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {operation.label for operation in operations} == set(BUSINESS_REFUSALS)
    for operation in operations:
        for mode in [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if takes_input(operation) else [])]:
            keeps_to_its_document(operation, mode, credentials, payer_id=str(payer.id))


def keeps_to_its_document(operation, mode: GenerationMode, credentials: dict, payer_id: str) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case=operation.as_strategy(generation_mode=mode, **credentials))
    def keeps_to_it(case):
        # A person who exists, so that a charge or a hold gets past "who?" to its amount.
        if isinstance(case.body, dict) and CANONICAL_UUID.match(str(case.body.get("user_id"))):
            case.body["user_id"] = payer_id
        charges = case.body.get("charges") if isinstance(case.body, dict) else None
        for item in charges if isinstance(charges, list) else []:  # a batch's items too
            if isinstance(item, dict) and CANONICAL_UUID.match(str(item.get("user_id"))):
                item["user_id"] = payer_id
        case.call_and_validate(checks=BY_MODE[mode])

    keeps_to_it()
