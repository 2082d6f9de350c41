"""The API reference an integrator reads (issue 25; SPEC 12, 16, 18): /api/openapi.json is valid
OpenAPI 3.1, names the codes of every refusal, has an example of every request body and success
answer that its schema admits, types the batch's items, documents the headers, and has the events
as `webhooks` with a sample each, the very events the code writes; /api/docs shows all of it."""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jsonschema_rs
import pytest
from flask_babel import force_locale, gettext
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from sqlalchemy import select

from ledger.models import Event, EventType, LimitSetter
from ledger.services.backoffice.people import adjust
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.charges import charge_usage
from ledger.services.books.expiry import expire_credits, notify_expiring
from ledger.services.books.holds import expire_holds, place_hold
from ledger.services.books.limits import set_limit
from ledger.services.context import INTERNAL, SYSTEM
from ledger.services.events import sample_event
from ledger.services.growth import plans
from ledger.services.growth.codes import redeem
from ledger.services.payments.refunds import refund_order
from ledger.web.openapi import MEANINGS, openapi_document, operations, webhooks
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, make, settle_by_notify

SUCCESS = re.compile(r"^2\d\d$")


@pytest.fixture
def doc(client) -> dict:
    """The document as a client reads it (JSON)."""
    return client.get("/api/openapi.json").get_json()


def admits(doc: dict, schema: dict):
    """Does `schema` (with the document's components) admit a value? As schemathesis reads it."""
    return jsonschema_rs.validator_for({**schema, "components": doc["components"]}).is_valid


def each_operation(doc: dict):
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield f"{method.upper()} {path}", op


def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    validate_openapi(doc, cls=OpenAPIV31SpecValidator)


def test_every_refusal_names_each_code_it_may_carry_with_an_example(doc):
    for name, op in each_operation(doc):
        for status, answer in op["responses"].items():
            content = answer.get("content", {}).get("application/json", {})
            if content.get("schema") != {"$ref": "#/components/schemas/Error"}:
                continue
            examples = content.get("examples", {})
            assert examples, f"{name} {status} names no error code"
            for code, example in examples.items():
                assert example["value"]["error"]["code"] == code and example["summary"] == MEANINGS[code]
                assert f"`{code}`: {MEANINGS[code]}" in answer["description"], (name, status, code)
                assert admits(doc, content["schema"])(example["value"]), (name, status, code)


def codes(doc: dict, path: str, method: str = "post") -> dict[str, set[str]]:
    responses = doc["paths"][path][method]["responses"]
    return {
        status: set(answer["content"]["application/json"].get("examples", {}))
        for status, answer in responses.items()
        if not SUCCESS.match(status) and "content" in answer
    }


def test_the_codes_are_those_each_route_answers(doc):
    assert codes(doc, "/api/billing/deduct") == {
        "401": {"unauthorized"},
        "402": {"insufficient_balance", "spending_limit_reached"},
        "403": {"account_disabled"},
        "404": {"user_not_found"},
        "409": {"request_id_conflict"},
        "413": {"request_entity_too_large"},
        "422": {"invalid_request"},
        "503": {"database_unavailable"},
    }
    assert codes(doc, "/api/billing/holds/{hold_id}/capture")["422"] == {"capture_exceeds_hold", "invalid_request"}
    assert codes(doc, "/api/payments/create")["429"] == {"too_many_pending_orders", "too_many_requests"}
    assert codes(doc, "/api/payments/create")["400"] == {"csrf_failed"}  # a person's POST without its token
    assert codes(doc, "/api/codes/redeem")["410"] == {"code_expired", "code_disabled"}
    assert codes(doc, "/api/users/{user_id}/portal")["403"] == {"account_disabled", "admin_account"}
    assert "422" not in codes(doc, "/api/billing/summary", "get")  # it takes no input to refuse
    hold_402 = doc["paths"]["/api/billing/holds"]["post"]["responses"]["402"]["content"]["application/json"]
    assert hold_402["examples"]["insufficient_balance"]["value"]["error"]["message"] == (
        "The available balance (¥1.00) is too low to hold this amount."
    )


def test_every_request_body_and_success_answer_has_an_example_its_schema_admits(doc):
    components = doc["components"]["schemas"]

    def examples_of(content: dict) -> list:
        given = [example["value"] for example in content.get("examples", {}).values()]
        ref = content["schema"].get("$ref")
        return given or (components[ref.rsplit("/", 1)[1]].get("examples", []) if ref else [])

    for name, op in each_operation(doc):
        contents = [("body", op["requestBody"]["content"]["application/json"])] if "requestBody" in op else []
        contents += [
            (status, answer["content"]["application/json"])
            for status, answer in op["responses"].items()
            if SUCCESS.match(status) and "application/json" in answer.get("content", {})
        ]
        for where, content in contents:
            found = examples_of(content)
            assert found, f"{name} {where}: no example"
            assert all(admits(doc, content["schema"])(example) for example in found), f"{name} {where}"
    for name, schema in components.items():  # and every example a schema carries
        for example in schema.get("examples", []):
            assert admits(doc, {"$ref": f"#/components/schemas/{name}"})(example), name


def test_a_capture_is_shown_captured_and_its_amount_said_to_be_the_holds(doc):
    capture = doc["paths"]["/api/billing/holds/{hold_id}/capture"]["post"]
    example = capture["responses"]["200"]["content"]["application/json"]["examples"]["example"]["value"]
    assert (example["status"], example["amount"], example["held_amount"], example["captured_amount"]) == (
        "captured",
        "8.00",
        "8.00",
        "4.80",
    )
    hold = doc["components"]["schemas"]["HoldAnswer"]["properties"]
    assert "hold's amount" in hold["amount"]["description"] and "`amount`" in hold["held_amount"]["description"]
    charge = doc["components"]["schemas"]["Charge"]["properties"]
    assert "`balance_after`: the same figure" in charge["balance"]["description"]


def test_the_batchs_items_are_typed_as_the_deduct_body_and_its_answers_by_status(doc):
    schemas = doc["components"]["schemas"]
    charges = schemas["BatchBody"]["properties"]["charges"]
    assert charges["items"] == {"$ref": "#/components/schemas/DeductBody"}
    assert (charges["minItems"], charges["maxItems"]) == (1, 1000)
    item = schemas["BatchItem"]["properties"]
    assert item["status"]["enum"] == [
        "charged",
        "replayed",
        "insufficient_balance",
        "request_id_conflict",
        "user_not_found",
        "account_disabled",
        "spending_limit_reached",
        "invalid_request",
    ]
    assert item["drawn"]["anyOf"][0] == {"$ref": "#/components/schemas/Drawn"}
    assert not [name for name in schemas if "." in name]  # one schema a model: Drawn, not Charge.Drawn


def test_an_item_with_bad_fields_is_that_items_refusal_and_only_a_bad_list_is_422(client, session, internal_headers):
    person = UserFactory(balance="10.00")
    good = {"user_id": str(person.id), "amount": "1.00", "model": "m", "request_id": "r1"}
    answer = client.post(
        "/api/billing/deduct/batch",
        json={"charges": [good, {**good, "request_id": "r2", "amount": 1}, {**good, "request_id": "r3", "model": ""}]},
        headers=internal_headers,
    )
    assert answer.status_code == 200
    results = answer.get_json()["results"]
    assert [(r["status"], r.get("error", {}).get("field")) for r in results] == [
        ("charged", None),
        ("invalid_request", "amount"),
        ("invalid_request", "model"),
    ]
    for body in ({"charges": []}, {"charges": [1]}, {"charges": "x"}, {"charges": [good] * 1001}, {}):
        refused = client.post("/api/billing/deduct/batch", json=body, headers=internal_headers)
        assert (refused.status_code, refused.get_json()["error"]["code"]) == (422, "invalid_request"), body


def test_every_operation_documents_x_request_id_both_ways(doc):
    assert doc["components"]["parameters"]["XRequestId"]["in"] == "header"
    header = doc["components"]["headers"]["XRequestId"]
    for name, op in each_operation(doc):
        assert {"$ref": "#/components/parameters/XRequestId"} in op["parameters"], name
        for status, answer in op["responses"].items():
            assert answer["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/XRequestId"}, (name, status)
    assert re.fullmatch(header["schema"]["pattern"], "job-42.attempt_1")


def test_the_events_are_webhooks_each_with_its_schema_a_sample_and_the_signature(doc):
    assert set(doc["webhooks"]) == {t.value for t in EventType}
    signature = doc["components"]["parameters"]["XLedgerSignature"]
    assert (signature["name"], signature["in"], signature["required"]) == ("X-Ledger-Signature", "header", True)
    for type_, hook in doc["webhooks"].items():
        post = hook["post"]
        assert {"$ref": "#/components/parameters/XLedgerSignature"} in post["parameters"]
        content = post["requestBody"]["content"]["application/json"]
        sample = content["examples"]["sample"]["value"]
        assert sample == sample_event(EventType(type_))  # what `flask events send-test` posts
        assert admits(doc, content["schema"])(sample), type_
        data = doc["components"]["schemas"][content["schema"]["$ref"].rsplit("/", 1)[1]]["properties"]["data"]
        assert not admits(doc, data)({**sample["data"], "balance": 9.8}), type_  # money as strings
        assert set(post["responses"]) == {"2XX", "default"}


def test_the_events_the_code_writes_are_the_documented_ones(session, settings, xorpay, doc):
    """One event of each type, written by the code that writes it, against its webhook's schema."""
    person = UserFactory(balance="20.00")
    order = PaymentFactory(user=person, amount=Decimal("50.00"))
    settle_by_notify(session, order, settings)  # topup.succeeded
    adjust(session, ADMIN, person.id, "5.00", debit=False, reason="goodwill")  # balance.adjusted, credit
    adjust(session, ADMIN, person.id, "2.00", debit=True, reason="correction")  # and debit: a negative amount
    hold = place_hold(session, user_id=person.id, amount="4.00", model="v", request_id="h1", ctx=INTERNAL).hold
    expire_holds(session, SYSTEM.at(hold.expires_at + timedelta(seconds=1)))  # hold.expired
    xorpay.refund_answers("ok")
    refund_order(session, xorpay.client, ADMIN, order.id, "20.00", reason="asked")  # refund.succeeded
    xorpay.server.clear()
    xorpay.refund_answers("order_error")
    refund_order(session, xorpay.client, ADMIN, order.id, "5.00", reason="again")  # refund.failed
    _batch, [code] = make(session, ADMIN, count=1, amount="3.00")
    redeem(session, person.id, code, INTERNAL)  # redemption.redeemed
    charge_usage(session, user_id=person.id, amount="50.00", model="m", request_id="big", ctx=INTERNAL)  # balance.low
    low = UserFactory(balance="12.00")
    place_hold(session, user_id=low.id, amount="5.00", model="v", request_id="h2", ctx=INTERNAL)  # balance.low, hold
    later = datetime.now(UTC) + timedelta(days=400)
    adjust_balance(session, user_id=person.id, amount=Decimal("2.00"), memo="gift", ctx=SYSTEM, expires_at=later)
    notify_expiring(session, SYSTEM.at(later - timedelta(days=1)))  # credit.expiring
    expire_credits(session, SYSTEM.at(later))  # credit.expired
    plans.create_plan(
        session, ADMIN, code="pro", name_zh="专业版", name_en="Pro", price="1.00", period="week", allowance="2.00",
        reason="launch",
    )  # fmt: skip
    for who, balance in (("renews", "5.00"), ("lapses", "1.00")):
        plans.subscribe(session, INTERNAL.at(later), str(UserFactory(balance=balance, email=f"{who}@x.cn").id), "pro")
    plans.renew_due(session, SYSTEM.at(later + timedelta(days=7)))  # subscription.renewed, subscription.lapsed
    capped = UserFactory(balance="3.00")
    set_limit(session, INTERNAL, user_id=capped.id, period="day", amount="1.00", set_by=LimitSetter.PERSON)
    charge_usage(session, user_id=capped.id, amount="1.00", model="m", request_id="cap", ctx=INTERNAL)  # limit.reached
    written = session.scalars(select(Event).execution_options(populate_existing=True)).all()
    assert {e.type.value for e in written} == set(doc["webhooks"])
    for event in written:
        schema = doc["webhooks"][event.type.value]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body = json.loads(
            json.dumps({"id": str(event.id), "type": event.type.value, "created_at": "t", "data": event.data})
        )
        assert admits(doc, schema)(body), (event.type.value, event.data)
    assert any(e.data["amount"] == "-2.00" for e in written if e.type == EventType.BALANCE_ADJUSTED)
    lows = [e.data for e in written if e.type == EventType.BALANCE_LOW]
    assert {"usage_id" in d for d in lows} == {True, False} and {"hold_id" in d for d in lows} == {True, False}


def test_a_quotes_model_is_required_and_said_so(doc):
    [model] = [p for p in doc["paths"]["/api/console/quote"]["get"]["parameters"] if p.get("name") == "model"]
    assert model["required"] is True and "optional" not in model["description"] and "(needed)" not in json.dumps(doc)


def test_the_docs_page_shows_markdown_fields_codes_examples_and_webhooks(client):
    page = client.get("/api/docs", headers={"Accept-Language": "en"}).get_data(as_text=True)
    client.get("/lang/en")
    page = client.get("/api/docs").get_data(as_text=True)
    text = re.sub(r"<pre.*?</pre>", "", page, flags=re.S)  # examples are JSON, as sent
    assert "`" not in text  # Markdown is rendered, not shown
    assert "<code>request_id</code>" in page and "<strong>Money</strong>" in page
    deduct = page.split('id="post-api-billing-deduct"', 1)[1].split("</section>", 1)[0]
    assert "<code>balance_<wbr>after</code>" in deduct and "SPEC 6's name for <code>balance_after</code>" in deduct
    assert "<code>insufficient_<wbr>balance</code>" in deduct and "&#34;amount&#34;: &#34;0.20&#34;" in deduct
    assert page.count('data-testid="webhook"') == len(EventType)
    assert "X-Ledger-Signature" in page and "events send-test" in page


def test_every_word_of_the_reference_is_in_both_languages(app, client):
    """The answers' fields, the refusals' meanings and the events' words are in the catalogue too."""
    doc = openapi_document(app)
    texts = set()
    for op in operations(doc):
        texts |= {f.description for answer in op.successes for f in answer.fields}
        texts |= {r.meaning for r in op.refusals} | {a.note for a in op.successes}
    for event in webhooks(doc):
        texts |= {event.summary, *(f.description for f in event.fields)}
    texts -= {""}
    assert len(texts) > 80
    with app.test_request_context(), force_locale("zh"):
        assert sorted(t for t in texts if gettext(t) == t) == []
    page = client.get("/api/docs").get_data(as_text=True)  # Chinese by default
    assert "可用金额（余额减去冻结金额）不足" in page and "发往你的后端的事件（webhooks）" in page
