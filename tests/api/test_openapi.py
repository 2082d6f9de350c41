"""The API's contract (SPEC 18): an OpenAPI 3.1 document of every JSON route, made from the schemas
that validate them; a body the schema refuses is a SPEC 6 refusal in the person's language."""

import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape

from ledger.web.openapi import openapi_document, operations
from tests.factories import UserFactory

# JSON routes that are not in the document, and why.
UNDOCUMENTED = {
    "/api/payments/webhook": "XorPay's form-encoded notify (SPEC 18 leaves it out)",
    "/api/openapi.json": "the document itself",
    "/api/docs": "the document as a page",
}


def documented(app, client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def test_the_document_covers_every_json_route_and_healthz(app, client):
    doc = documented(app, client)
    assert doc["openapi"] == "3.1.0"
    paths = {(path, method.upper()) for path, methods in doc["paths"].items() for method in methods}
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule == "/healthz") or rule.rule in UNDOCUMENTED:
            continue
        path = rule.rule.replace("<uuid:", "<").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in paths, f"{method} {rule.rule} is served but not in /api/openapi.json"
    assert len(paths) == 15


def test_money_is_a_string_with_a_pattern_everywhere(app, client):
    schemas = documented(app, client)["components"]["schemas"]
    for name in ("DeductBody", "CaptureBody", "TopupBody", "Charge", "HoldAnswer", "Summary", "Totals"):
        money = [p for p in schemas[name]["properties"].values() if "(money)" in str(p) or "pattern" in str(p)]
        assert money, name
    amount = schemas["DeductBody"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["pattern"] == "^[0-9]{1,14}(?:\\.[0-9]{1,20})?$"
    internal = documented(app, client)["paths"]["/api/billing/deduct"]["post"]
    assert internal["security"] == [{"internal": []}] and set(internal["responses"]) >= {"200", "402", "409", "422"}


def test_the_docs_page_lists_every_operation_in_chinese_and_english(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert page.count('data-testid="operation"') == 15 and "请求体（JSON）" in page
    client.get("/lang/en")
    page = client.get("/api/docs").get_data(as_text=True)
    assert "Request body (JSON)" in page and "/api/billing/deduct" in page


def test_every_word_of_the_docs_page_is_in_the_persons_language(app, client):
    """The routes' summaries and descriptions (from their docstrings) and the fields' meanings (from the
    schemas) are in the catalogue, so a new route or field without a translation fails here."""
    page = client.get("/api/docs").get_data(as_text=True)
    doc = openapi_document(app)
    texts = {doc["info"]["description"]}
    for op in operations(doc):
        texts |= {op.summary, op.description, *(f.description for f in op.fields)} - {""}
    assert len(texts) == 34
    # A % in a route's docstring or a field's meaning can read as a placeholder to babel, and a
    # translation without it would stop `pybabel compile` (make install): write "per cent".
    assert [t for t in texts if "%" in t] == []
    with app.test_request_context(), force_locale("zh"):
        untranslated = sorted(t for t in texts if gettext(t) == t)
        shown = {t: gettext(t) for t in texts}
    assert untranslated == []
    for english, chinese in shown.items():
        assert str(escape(chinese)) in page and str(escape(english)) not in page, english
    assert escape("为某人的一次付费功能使用扣费。") in page
    assert '<h1 class="h3 fw-semibold mb-1">Ledger API ' in page
    assert "string（金额）" in page and "object 数组" in page and "string (money)" not in page
    client.get("/lang/en")
    page = client.get("/api/docs").get_data(as_text=True)
    assert all(str(escape(english)) in page for english in texts)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"amount": "1.00", "model": "m", "request_id": "r"}, "user_id", "请提供形如"),
        ({"user_id": "x", "amount": 1, "model": "m", "request_id": "r"}, "amount", "金额请写成十进制字符串"),
        ({"user_id": "x", "amount": "1", "model": "m" * 101, "request_id": "r"}, "model", "请输入 1 到 100 个字符。"),
        ({"user_id": "x", "amount": "1", "model": "m", "request_id": 7}, "request_id", "请输入文字。"),
        ({"user_id": "x", "amount": "1", "model": "m", "request_id": "r", "params": [1]}, "params", "JSON 对象"),
    ],
)
def test_a_body_the_schema_refuses_is_a_422_naming_the_field_in_chinese(
    client, session, internal_headers, body, field, message
):
    response = client.post("/api/billing/deduct", json=body, headers=internal_headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", field)
    assert message in error["message"]


def test_without_the_token_the_body_is_not_even_read(client):
    response = client.post("/api/billing/deduct", json={"amount": 5})
    assert response.status_code == 401


def test_a_body_that_is_not_an_object_says_so(client, internal_headers):
    response = client.post(
        "/api/billing/deduct", data="[1]", headers={**internal_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "JSON" in response.get_json()["error"]["message"]


def test_a_top_up_with_a_number_is_invalid_amount_as_the_service_says(client, auth, session):
    auth.login(UserFactory())
    response = client.post("/api/payments/create", json={"amount": 10}, headers={"X-CSRFToken": auth.csrf_token("/")})
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid_amount"
