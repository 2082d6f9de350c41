"""One error contract (ledger/errors.py, ledger/web/errors.py): every refusal has its SPEC 6 code and
status, and its message is in the person's language, Chinese by default and English on request."""

import re
import uuid

import pytest
from sqlalchemy import select

from ledger.models import InviteRelation
from tests.factories import InviteFactory, PaymentFactory, UserFactory, current_session
from tests.helpers import post_form

CJK = re.compile(r"[\u4e00-\u9fff]")


def _deduct(client, headers, **body):
    base = {"user_id": str(UserFactory(balance="1.00").id), "amount": "0.50", "model": "m", "request_id": "r-1"}
    return client.post("/api/billing/deduct", json={**base, **body}, headers=headers)


def _conflict(client, headers):
    user = UserFactory(balance="5.00")
    body = {"user_id": str(user.id), "amount": "1.00", "model": "m", "request_id": "same"}
    client.post("/api/billing/deduct", json=body, headers=headers)
    return client.post("/api/billing/deduct", json={**body, "amount": "2.00"}, headers=headers)


def _bind(client, auth, code):
    return client.post("/api/invites/register", json={"code": code}, headers={"X-CSRFToken": auth.csrf_token("/")})


def _with_an_inviter(me) -> bool:
    """`me`, invited by someone: once, however often the trigger runs."""
    if current_session().scalar(select(InviteRelation.id).where(InviteRelation.invitee_id == me.id)) is None:
        InviteFactory(invitee=me)
    return True


# Each error code of SPEC 6, and a request that answers it: (status, code, request).
TRIGGERS = {
    "unauthorized": (401, lambda c, a, h, me: c.post("/api/billing/deduct", json={})),
    "insufficient_balance": (402, lambda c, a, h, me: _deduct(c, h, amount="2.00")),
    "user_not_found": (404, lambda c, a, h, me: _deduct(c, h, user_id=str(uuid.uuid4()))),
    "request_id_conflict": (409, lambda c, a, h, me: _conflict(c, h)),
    "invalid_request": (422, lambda c, a, h, me: _deduct(c, h, amount=" 1.00")),
    "invalid_amount": (
        422,
        lambda c, a, h, me: c.post(
            "/api/payments/create", json={"amount": "0.10"}, headers={"X-CSRFToken": a.csrf_token("/")}
        ),
    ),
    "not_found": (404, lambda c, a, h, me: c.get(f"/api/payments/{uuid.uuid4()}")),
    "invite_code_not_found": (404, lambda c, a, h, me: _bind(c, a, "nobody42")),
    "self_invite": (422, lambda c, a, h, me: _bind(c, a, me.invite_code)),
    "already_invited": (409, lambda c, a, h, me: _bind(c, a, _with_an_inviter(me) and UserFactory().invite_code)),
    "invite_cycle": (422, lambda c, a, h, me: _bind(c, a, InviteFactory(inviter=me).invitee.invite_code)),
    "invite_not_found": (
        404,
        lambda c, a, h, me: c.post("/api/invites/reward", json={"invitee_id": str(UserFactory().id)}, headers=h),
    ),
    "invalid_range": (422, lambda c, a, h, me: c.get("/api/usage/report?from=2026-13-01")),
    "csrf_failed": (400, lambda c, a, h, me: c.post("/api/payments/create", json={"amount": "10.00"})),
    "method_not_allowed": (405, lambda c, a, h, me: c.get("/api/payments/create")),
    "unsupported_media_type": (
        415,
        lambda c, a, h, me: c.post("/account", json={"full_name": "x"}, headers={"X-CSRFToken": a.csrf_token("/")}),
    ),
}


@pytest.mark.parametrize("code", TRIGGERS)
def test_every_error_code_answers_in_the_persons_language(client, auth, session, internal_headers, code):
    me = UserFactory()
    auth.login(me)
    status, trigger = TRIGGERS[code]
    messages = {}
    for language in ("zh", "en"):
        client.set_cookie("lang", language)
        response = trigger(client, auth, internal_headers, me)
        assert response.status_code == status
        if response.is_json:
            error = response.get_json()["error"]
            assert error["code"] == code
            messages[language] = error["message"]
        else:  # a page (415 for JSON sent to a form): the translated error page
            messages[language] = re.search(r"<h1[^>]*>(.*?)</h1>", response.get_data(as_text=True), re.S).group(1)
    assert CJK.search(messages["zh"]), messages
    assert not CJK.search(messages["en"]), messages
    assert messages["zh"] != messages["en"]


def test_browser_api_calls_speak_the_pages_language_whatever_accept_language_says(client, auth, session):
    auth.login(UserFactory())
    asked = {"Accept-Language": "en-US,en;q=0.9"}
    assert 'lang="zh-CN"' in client.get("/console", headers=asked).get_data(as_text=True)
    quote = client.get("/api/console/quote?model=chat-pro&tier=standard&tokens=0", headers=asked)
    assert quote.get_json()["error"]["message"] == "请输入 1 到 200000 之间的整数。"


def test_services_without_a_language_cookie_may_ask_with_accept_language(client, session, internal_headers):
    body = {"user_id": str(uuid.uuid4()), "amount": "1.00", "model": "m", "request_id": "r"}
    chinese = client.post("/api/billing/deduct", json=body, headers=internal_headers)
    english = client.post("/api/billing/deduct", json=body, headers={**internal_headers, "Accept-Language": "en-US"})
    assert chinese.get_json()["error"]["message"] == "没有这个 ID 的用户。"
    assert english.get_json()["error"]["message"] == "No user has this id."


def test_an_invalid_field_is_named_in_the_error(client, session, internal_headers):
    response = _deduct(client, internal_headers, model="")
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "code": "invalid_request",
        "field": "model",
        "message": "请输入 1 到 100 个字符。",
        "min": 1,
        "max": 100,
    }


@pytest.mark.parametrize(
    ("path", "english"),
    [
        ("/usage?from=2026-02-30", "Enter a date as YYYY-MM-DD."),
        ("/usage?from=2026-03-02&to=2026-03-01", "The start date must not be after the end date."),
        ("/console?model=chat-pro&tokens=0", "Enter a whole number from 1 to 200000."),
        ("/console?model=chat-pro&tier=huge", "Choose one of: standard, long-context."),
    ],
)
def test_page_errors_are_in_the_persons_language(client, auth, session, path, english):
    auth.login(UserFactory())
    chinese_page = client.get(path).get_data(as_text=True)
    assert english not in chinese_page
    client.set_cookie("lang", "en")
    assert english in client.get(path).get_data(as_text=True)


def test_a_missing_page_and_order_are_translated_error_pages(client, auth, session):
    auth.login(UserFactory())
    for path in ("/no-such-page", f"/recharge/{uuid.uuid4()}", "/recharge/not-an-id"):
        response = client.get(path)
        assert response.status_code == 404
        assert CJK.search(re.search(r"<h1[^>]*>(.*?)</h1>", response.get_data(as_text=True), re.S).group(1))
    client.set_cookie("lang", "en")
    assert "There is no such top-up order." in client.get(f"/recharge/{uuid.uuid4()}").get_data(as_text=True)


def test_errors_do_not_leak_tracebacks(client, auth, session, monkeypatch):
    import ledger.blueprints.books.billing_api as api_billing
    import ledger.blueprints.site as site

    def boom(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api_billing, "account_summary", boom)
    monkeypatch.setattr(site, "account_summary", boom)
    auth.login(UserFactory())
    api = client.get("/api/billing/summary")
    assert api.status_code == 500 and api.get_json()["error"]["code"] == "internal_error"
    page = client.get("/")
    assert page.status_code == 500
    for response in (api, page):
        assert "secret internals" not in response.get_data(as_text=True)
        assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_a_refused_check_now_says_why_on_the_order_page_after_a_redirect(client, auth, session, xorpay):
    me = UserFactory()
    auth.login(me)
    order = PaymentFactory(user=me)
    xorpay.query2_answers("sign_error")
    response = post_form(client, auth, f"/recharge/{order.id}/check", f"/recharge/{order.id}")
    assert (response.status_code, response.headers["Location"]) == (302, f"/recharge/{order.id}")
    assert "支付服务拒绝了签名，请联系客服。" in client.get(response.headers["Location"]).get_data(as_text=True)
