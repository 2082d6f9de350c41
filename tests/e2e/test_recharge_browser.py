"""/recharge in a real browser: the pay button names the amount and the method as the person picks
them, a typed amount and a preset never both look chosen, an unpaid order can be reopened at any
width, and the Alipay order page links to the payment."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from ledger.models import User
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM

pytestmark = [pytest.mark.e2e, pytest.mark.committed]

SUBMIT = "[data-testid=recharge-submit]"


def test_the_pay_button_follows_the_amount_and_the_method(page, committed):
    tab, p = page, page.page
    tab.register(f"button-{page.name[-6:]}@example.com")
    tab.goto("/recharge")
    expect(p.locator(SUBMIT)).to_have_text("支付宝支付 ¥50.00")
    assert p.is_checked("#preset-50")

    p.fill("#custom_amount", "３０")  # full-width, as a Chinese keyboard types it
    expect(p.locator(SUBMIT)).to_have_text("支付宝支付 ¥30.00")
    assert not p.is_checked("#preset-50")  # the preset no longer looks chosen
    p.click("label[for=method-native]")
    expect(p.locator(SUBMIT)).to_have_text("微信支付 ¥30.00")
    p.fill("#custom_amount", "1,500元")
    expect(p.locator(SUBMIT)).to_have_text("微信支付 ¥1,500.00")
    p.fill("#custom_amount", "五十")  # not an amount: the button says no amount
    expect(p.locator(SUBMIT)).to_have_text("微信支付")
    p.click("label[for=preset-100]")  # a preset clears what was typed
    expect(p.locator("#custom_amount")).to_have_value("")
    expect(p.locator(SUBMIT)).to_have_text("微信支付 ¥100.00")
    p.click("label[for=method-alipay]")
    p.fill("#custom_amount", "30")
    expect(p.locator(SUBMIT)).to_have_text("支付宝支付 ¥30.00")
    p.wait_for_timeout(300)  # colour transitions end before the screenshot
    tab.shot("recharge-typed")
    p.click(SUBMIT)
    p.wait_for_selector("[data-testid=qr] svg")
    assert p.inner_text("[data-testid=order-amount]").strip() == "¥30.00"  # what the button said

    tab.goto("/lang/en?next=/recharge")
    expect(p.locator(SUBMIT)).to_have_text("Pay ¥50.00 with Alipay")
    p.fill("#custom_amount", "12.5")
    p.click("label[for=method-native]")
    expect(p.locator(SUBMIT)).to_have_text("Pay ¥12.50 with WeChat Pay")
    p.wait_for_timeout(300)
    tab.shot("recharge-typed-en")
    assert tab.console_errors == []


def test_an_unpaid_order_is_reopened_from_the_history_and_links_to_the_payment(page, committed):
    tab, p = page, page.page
    narrow = p.viewport_size["width"] < 768
    tab.register(f"reopen-{page.name[-6:]}@example.com")
    tab.goto("/recharge")
    p.click(SUBMIT)
    p.wait_for_selector("[data-testid=qr] svg")
    order_url = p.url
    # On a phone the Alipay app opens from the button; on a computer the pay page opens in a new window.
    assert p.is_visible("[data-testid=open-alipay]") == narrow
    assert p.is_visible("[data-testid=open-alipay-window]") == (not narrow)
    assert p.get_attribute("[data-testid=open-alipay-window]", "target") == "_blank"
    tab.shot("order")

    for path in ("/recharge", "/"):
        tab.goto(path)
        if narrow or path == "/":  # the dashboard's narrow card has the phone's layout at every width
            link = p.locator("[data-testid=reopen-order]").first
            expect(link).to_have_text("去支付")
        else:
            link = p.locator(f"a[href='{order_url.removeprefix(tab.base)}'].font-monospace").first
        link.click()
        p.wait_for_url(order_url)
    tab.goto(f"/lang/en?next={order_url.removeprefix(tab.base)}")
    tab.shot("order-en")
    tab.goto("/recharge")
    if narrow:
        expect(p.locator("[data-testid=reopen-order]").first).to_have_text("Pay now")
    tab.shot("history-en")
    assert re.search(r"/recharge/[0-9a-f-]{36}$", order_url)
    assert tab.console_errors == []


def test_a_new_person_is_guided_and_the_console_follows_the_price(page, committed):
    tab, p = page, page.page
    email = f"first-{page.name[-6:]}@example.com"
    tab.register(email)
    expect(p.locator("[data-testid=first-step] h2")).to_have_text("第一步：先充值")
    tab.shot("dashboard-new")
    tab.goto("/console")
    expect(p.locator("[data-testid=console-first-step]")).to_be_visible()
    tab.shot("console-zero")

    with committed.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        adjust_balance(session, user_id=user.id, amount=Decimal("0.50"), memo="e2e", ctx=SYSTEM)
    tab.goto("/console")
    card = p.locator("[data-testid=model-image-studio-v2]")
    expect(card.locator("button[value=run]")).to_be_visible()  # ¥0.20 fits in ¥0.50
    card.locator("input[name=images]").fill("4")  # ¥0.80: more than the balance
    expect(card.locator("[data-price]")).to_have_text("¥0.80")
    expect(card.locator("[data-top-up]")).to_be_visible()
    expect(card.locator("button[value=run]")).to_be_hidden()
    card.locator("input[name=images]").fill("2")  # ¥0.40 fits again
    expect(card.locator("button[value=run]")).to_be_visible()
    expect(card.locator("[data-top-up]")).to_be_hidden()

    tab.goto("/lang/en?next=/console")
    tab.shot("console-en")
    assert tab.console_errors == []
