"""/recharge "Have a code?": a code typed as people type it is redeemed, the amount and new balance
said in a flash; a refusal is shown on the field, translated."""

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from ledger.services.growth.code_batches import create_batch
from ledger.services.growth.codes import shown
from tests.factories import UserFactory
from tests.helpers import ADMIN, balance_of, post_form


@pytest.fixture
def code(session):
    _batch, (made,) = create_batch(
        session, ADMIN, count=1, amount="50.00", expires=None, note=None, reason="t", tz=ZoneInfo("Asia/Shanghai")
    )
    return made


def test_the_recharge_page_offers_to_redeem_a_code(client, auth, session):
    auth.login(UserFactory())
    page = client.get("/recharge").get_data(as_text=True)
    assert 'action="/recharge/redeem"' in page and "有兑换码？" in page


def test_a_code_is_redeemed_and_the_amount_and_balance_are_said(client, auth, session, code):
    person = UserFactory(balance="12.00")
    auth.login(person)
    client.set_cookie("lang", "en")
    response = post_form(client, auth, "/recharge/redeem", "/recharge", code=f" {shown(code).lower()} ")
    assert (response.status_code, response.headers["Location"]) == (302, "/recharge")
    assert balance_of(session, person) == Decimal("62.00")
    page = client.get("/recharge").get_data(as_text=True)
    assert "Code redeemed: ¥50.00 added. Your balance is now ¥62.00." in page


@pytest.mark.parametrize(
    ("language", "said"), [("zh", "没有这个兑换码"), ("en", "There is no such code")], ids=["zh", "en"]
)
def test_an_unknown_code_is_said_on_the_field_in_the_persons_language(client, auth, session, language, said):
    auth.login(UserFactory())
    client.set_cookie("lang", language)
    response = post_form(client, auth, "/recharge/redeem", "/recharge", code="abcd-efgh")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'data-testid="redeem-error"' in page and said in page
    assert 'value="abcd-efgh"' in page  # what was typed stays, to be corrected
    assert 'aria-describedby="code-error" aria-invalid="true" autofocus>' in page  # and takes the focus


def test_a_used_code_says_so_and_ten_unknown_codes_stop_every_try_for_an_hour(client, auth, session, code):
    auth.login(UserFactory())
    client.set_cookie("lang", "en")
    assert post_form(client, auth, "/recharge/redeem", "/recharge", code=code).status_code == 302
    used = post_form(client, auth, "/recharge/redeem", "/recharge", code=code)
    assert used.status_code == 422 and "already been used" in used.get_data(as_text=True)
    for i in range(10):
        post_form(client, auth, "/recharge/redeem", "/recharge", code=f"WRONG{i}")
    stopped = post_form(client, auth, "/recharge/redeem", "/recharge", code=code)
    assert stopped.status_code == 429 and "Too many unknown codes" in stopped.get_data(as_text=True)


def test_redeeming_needs_a_signed_in_person_and_a_csrf_token(client, auth, session, code):
    signed_out = post_form(client, auth, "/recharge/redeem", "/login", code=code)
    assert signed_out.status_code == 302 and signed_out.headers["Location"].startswith("/login")
    person = UserFactory()
    auth.login(person)
    assert client.post("/recharge/redeem", data={"code": code}).status_code == 400
    assert balance_of(session, person) == 0
