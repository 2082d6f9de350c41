"""The API's contract (SPEC 18): an OpenAPI 3.1 document of every JSON route, made from the schemas
that validate them; a body the schema refuses is a SPEC 6 refusal in the person's language."""

from datetime import datetime, timedelta
from decimal import Decimal

import jsonschema_rs
import pytest
from flask_babel import force_locale, gettext
from markupsafe import escape

from ledger.money import amount_pattern
from ledger.web.openapi import markdown_html, openapi_document, operations
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
    assert len(paths) == 21


def test_money_is_a_string_with_a_pattern_everywhere(app, client):
    schemas = documented(app, client)["components"]["schemas"]
    for name in ("DeductBody", "CaptureBody", "TopupBody", "Charge", "HoldAnswer", "Summary", "Totals"):
        money = [p for p in schemas[name]["properties"].values() if p.get("format") == "decimal"]
        assert money and all(p["type"] == "string" and p["pattern"] for p in money), name
    amount = schemas["DeductBody"]["properties"]["amount"]
    assert amount["pattern"] == amount_pattern(places=4, maximum=Decimal(1_000_000))
    assert schemas["Charge"]["properties"]["amount"]["pattern"] == "^[0-9]{1,14}(?:\\.[0-9]{1,20})?$"
    internal = documented(app, client)["paths"]["/api/billing/deduct"]["post"]
    assert internal["security"] == [{"internal": []}] and set(internal["responses"]) >= {"200", "402", "409", "422"}


def request_schema(doc: dict, path: str, method: str = "post") -> dict:
    ref = doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]


def query_parameters(doc: dict, path: str) -> dict[str, dict]:
    return {p["name"]: p for p in doc["paths"][path]["get"]["parameters"] if p.get("in") == "query"}


@pytest.mark.parametrize("path", ["/api/billing/deduct", "/api/billing/holds", "/api/billing/holds/{hold_id}/capture"])
def test_a_charge_amount_is_documented_as_the_service_takes_it(app, client, path):
    amount = request_schema(documented(app, client), path)["properties"]["amount"]
    valid = jsonschema_rs.validator_for(amount).is_valid
    taken = ["0.01", "12.5", "1000000", "0.0001", "1000000.0000000", "007.50", "1.23450000"]
    refused = ["0", "0.00", "1.00001", "1000000.0001", "1000001", "-1", "1e3", ".5", "5.", " 1", "1\n", "１", 12.5]
    assert [a for a in taken if not valid(a)] == []
    assert [a for a in refused if valid(a)] == []


def test_a_top_up_amount_is_documented_with_this_sites_limits_by_method(app, client):
    body = request_schema(documented(app, client), "/api/payments/create")  # TOPUP_MIN 1.00, TOPUP_MAX 1000.00
    valid = jsonschema_rs.validator_for(body).is_valid
    assert [valid({"amount": a}) for a in ("1.00", "1", "1000.00", "12.5")] == [True] * 4
    assert [valid({"amount": a}) for a in ("0.99", "1000.01", "1.001", "0")] == [False] * 4
    assert valid({"amount": "20000.00", "pay_type": "native"}) and not valid(
        {"amount": "20000.01", "pay_type": "native"}
    )
    assert not valid({"amount": "1000.01", "pay_type": "alipay"})


def test_pay_type_is_alipay_or_native_and_never_null(app, client):
    pay_type = request_schema(documented(app, client), "/api/payments/create")["properties"]["pay_type"]
    assert pay_type == {
        "default": "alipay",
        "description": "alipay (default) or native: WeChat Pay.",
        "enum": ["alipay", "native"],
        "title": "Pay Type",
        "type": "string",
    }


def test_ttl_seconds_is_an_integer_from_60_to_86400_or_left_out(app, client):
    ttl = request_schema(documented(app, client), "/api/billing/holds")["properties"]["ttl_seconds"]
    assert ttl["anyOf"] == [{"maximum": 86400, "minimum": 60, "type": "integer"}, {"type": "null"}]


def test_an_invite_code_is_required_and_is_not_blank(app, client):
    body = request_schema(documented(app, client), "/api/invites/register")
    assert body["required"] == ["code"] and body["properties"]["code"]["minLength"] == 1
    valid = jsonschema_rs.validator_for(body).is_valid
    assert [valid({"code": c}) for c in ("", " ", "\t\u3000", "ab12cd")] == [False, False, False, True]


def test_a_quote_needs_one_of_the_consoles_models_and_checks_each_parameter(app, client):
    parameters = query_parameters(documented(app, client), "/api/console/quote")
    assert parameters["model"]["required"] is True
    assert parameters["model"]["schema"]["enum"] == ["image-studio-v2", "motion-video-1", "chat-pro"]
    assert parameters["resolution"]["schema"]["enum"] == ["512", "1024", "2048"]
    images = jsonschema_rs.validator_for(parameters["images"]["schema"]).is_valid
    assert [images(v) for v in ("1", "8", " 03 ", "0", "9", "", "1.0")] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_the_reports_days_are_dates_and_no_parameter_is_null(app, client):
    parameters = query_parameters(documented(app, client), "/api/usage/report")
    assert parameters["from"]["schema"]["format"] == parameters["to"]["schema"]["format"] == "date"
    assert not [name for name, p in parameters.items() if "null" in str(p["schema"]) or "default" in p["schema"]]
    limit = jsonschema_rs.validator_for(parameters["limit"]["schema"]).is_valid
    assert [limit(v) for v in ("1", "500", "0", "501", "")] == [True, True, False, False, False]


def test_the_docs_page_lists_every_operation_in_chinese_and_english(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert page.count('data-testid="operation"') == 21 and "请求体（JSON）" in page
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
    assert len(texts) == 65
    # A % in a route's docstring or a field's meaning can read as a placeholder to babel, and a
    # translation without it would stop `pybabel compile` (make install): write "per cent".
    assert [t for t in texts if "%" in t] == []
    with app.test_request_context(), force_locale("zh"):
        untranslated = sorted(t for t in texts if gettext(t) == t)
        shown = {t: gettext(t) for t in texts}
    assert untranslated == []
    for english, chinese in shown.items():
        assert as_shown(chinese) in page and as_shown(english) not in page, english
    assert escape("为某人的一次付费功能使用扣费。") in page
    assert '<h1 class="h3 fw-semibold mb-1">Ledger API ' in page
    assert "string（金额）" in page and "object 数组" in page and "string (money)" not in page
    client.get("/lang/en")
    page = client.get("/api/docs").get_data(as_text=True)
    assert all(as_shown(english) in page for english in texts)


def as_shown(text: str) -> str:
    """A text as the docs page shows it: its Markdown (`code`, lists...) as HTML."""
    return str(markdown_html(text, inline="\n\n" not in text))


SOMEONE = "3f2b0c4e-8d1a-4e5b-9c7d-2a6f1e0b5c9d"
DEDUCT = {"user_id": SOMEONE, "amount": "1.00", "model": "m", "request_id": "r"}
ID_WORDS = "请提供形如 3f2b0c4e-8d1a-4e5b-9c7d-2a6f1e0b5c9d 的 ID。"
MONEY_WORDS = '金额请写成十进制字符串，例如 "12.50"。'


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/api/billing/deduct", {**DEDUCT, "user_id": None}, "user_id", ID_WORDS),
        ("/api/billing/deduct", {**DEDUCT, "user_id": f"{{{SOMEONE}}}"}, "user_id", ID_WORDS),
        ("/api/billing/deduct", {**DEDUCT, "amount": 1}, "amount", MONEY_WORDS),
        ("/api/billing/deduct", {**DEDUCT, "amount": "1e3"}, "amount", MONEY_WORDS),
        ("/api/billing/deduct", {**DEDUCT, "amount": "0.00"}, "amount", "金额必须大于零。"),
        ("/api/billing/deduct", {**DEDUCT, "amount": "1.00001"}, "amount", "金额的小数超过 4 位。"),
        ("/api/billing/deduct", {**DEDUCT, "amount": "1000000.0001"}, "amount", "金额不能超过 ¥1,000,000.00。"),
        ("/api/billing/deduct", {**DEDUCT, "model": "m" * 101}, "model", "请输入 1 到 100 个字符。"),
        ("/api/billing/deduct", {**DEDUCT, "model": " \u3000 "}, "model", "请输入 1 到 100 个字符。"),
        ("/api/billing/deduct", {**DEDUCT, "request_id": 7}, "request_id", "请输入文字。"),
        ("/api/billing/deduct", {**DEDUCT, "request_id": "a\x00b"}, "request_id", "请删除其中的控制字符或无效字符。"),
        ("/api/billing/deduct", {**DEDUCT, "params": [1]}, "params", "请提供一个 JSON 对象。"),
        (
            "/api/billing/deduct",
            {**DEDUCT, "params": {"k": ["\x00"]}},
            "params",
            "请提供普通 JSON：不能有 NaN 或 Infinity、NUL 字符或无效的 Unicode。",
        ),
        ("/api/billing/holds", {**DEDUCT, "ttl_seconds": "120"}, "ttl_seconds", "请输入 60 到 86400 之间的整数。"),
        ("/api/billing/holds", {**DEDUCT, "ttl_seconds": 59}, "ttl_seconds", "请输入 60 到 86400 之间的整数。"),
        ("/api/billing/holds", {**DEDUCT, "ttl_seconds": 60.5}, "ttl_seconds", "请输入 60 到 86400 之间的整数。"),
        (f"/api/billing/holds/{SOMEONE}/capture", {"amount": "0"}, "amount", "金额必须大于零。"),
        ("/api/billing/deduct/batch", {"charges": [DEDUCT, 1]}, "charges", "每一笔扣费都须是 JSON 对象。"),
        ("/api/billing/deduct/batch", {"charges": []}, "charges", "请提供 1 到 1000 笔扣费组成的列表。"),
    ],
)
def test_what_an_internal_routes_schema_refuses_is_worded_as_its_service_words_it(
    client, session, internal_headers, path, body, field, message
):
    response = client.post(path, json=body, headers=internal_headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"], error["message"]) == ("invalid_request", field, message)


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "field", "message"),
    [
        (
            "post",
            "/api/payments/create",
            {"amount": "0"},
            "invalid_amount",
            "amount",
            "请输入 ¥1.00 到 ¥1,000.00 之间的金额，最多两位小数。",
        ),
        (
            "post",
            "/api/payments/create",
            {"amount": "0.00", "pay_type": "native"},
            "invalid_amount",
            "amount",
            "请输入 ¥1.00 到 ¥20,000.00 之间的金额，最多两位小数。",
        ),
        (
            "post",
            "/api/payments/create",
            {"amount": "1.001"},
            "invalid_amount",
            "amount",
            "金额最多两位小数（精确到分），例如 30.50。",
        ),
        ("post", "/api/payments/create", {"amount": 10}, "invalid_amount", "amount", MONEY_WORDS),
        (
            "post",
            "/api/payments/create",
            {"amount": "10", "pay_type": None},
            "invalid_request",
            "pay_type",
            "请选择支付宝或微信支付。",
        ),
        ("post", "/api/invites/register", {"code": ""}, "invalid_request", "code", "请输入邀请码。"),
        ("post", "/api/invites/register", {"code": " \t "}, "invalid_request", "code", "请输入邀请码。"),
        ("get", "/api/console/quote", {"tokens": "5"}, "unknown_model", "model", "没有这个模型。"),
        (
            "get",
            "/api/console/quote",
            {"model": "chat-pro", "images": "9"},
            "invalid_request",
            "images",
            "请输入 1 到 8 之间的整数。",
        ),
        (
            "get",
            "/api/console/quote",
            {"model": "chat-pro", "resolution": "4096"},
            "invalid_request",
            "resolution",
            "请从以下选项中选择：512, 1024, 2048。",
        ),
        ("get", "/api/usage/report", {"from": "2026-3-1"}, "invalid_range", "from", "请按 YYYY-MM-DD 格式输入日期。"),
        ("get", "/api/usage/report", {"to": ""}, "invalid_range", "to", "请按 YYYY-MM-DD 格式输入日期。"),
        (
            "get",
            "/api/usage/report",
            {"group_by": "week"},
            "invalid_request",
            "group_by",
            "请从以下选项中选择：day, model。",
        ),
        ("get", "/api/usage/report", {"format": "xml"}, "invalid_request", "format", "请从以下选项中选择：json, csv。"),
        ("get", "/api/usage/report", {"limit": "0"}, "invalid_request", "limit", "请输入 1 到 500 之间的整数。"),
        ("get", "/api/usage/report", {"model": ""}, "invalid_request", "model", "请输入 1 到 100 个字符。"),
        (
            "get",
            "/api/usage/report",
            {"cursor": "!!"},
            "invalid_request",
            "cursor",
            "这个 cursor 无效：请原样传回 next_cursor。",
        ),
    ],
)
def test_what_a_persons_routes_schema_refuses_is_worded_as_its_service_words_it(
    client, auth, session, method, path, body, code, field, message
):
    auth.login(UserFactory())
    if method == "post":
        response = client.post(path, json=body, headers={"X-CSRFToken": auth.csrf_token("/")})
    else:
        response = client.get(path, query_string=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"], error["message"]) == (code, field, message)


def test_a_refusal_by_the_schema_is_in_english_for_an_english_reader(client, session, internal_headers):
    client.get("/lang/en")
    response = client.post("/api/billing/deduct", json={**DEDUCT, "amount": "0.00001"}, headers=internal_headers)
    assert response.get_json()["error"]["message"] == "The amount has more than 4 decimal places."


def test_a_whole_number_of_seconds_may_be_written_as_a_json_number_with_a_zero_fraction(
    client, session, internal_headers
):
    # JSON Schema's integer is a number without a fraction, however it is written
    user = UserFactory(balance="10.00")
    response = client.post(
        "/api/billing/holds", json={**DEDUCT, "user_id": str(user.id), "ttl_seconds": 120.0}, headers=internal_headers
    )
    assert response.status_code == 201
    body = response.get_json()
    assert datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"]) == timedelta(
        seconds=120
    )


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
