"""A person in a real browser: register, sign in, charge on /console, see the new balance on /."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from ledger.models import PaymentTransaction, User
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM

pytestmark = [pytest.mark.e2e, pytest.mark.committed]


def test_register_sign_in_charge_on_console_and_see_balance(page, committed):
    tab, p = page, page.page
    email = f"browser-{page.name[-6:]}@example.com"

    tab.goto("/register")
    tab.shot("register")
    p.fill("input[name=email]", email)
    p.fill("input[name=password]", "browser-password")
    p.click("button[type=submit]")
    p.wait_for_url(re.compile(r"/$"))
    assert p.inner_text("[data-testid=balance]").strip() == "¥0.00"

    p.click("header button[type=submit]")  # sign out
    p.wait_for_url(re.compile(r"/login"))
    p.fill("input[name=email]", email)
    p.fill("input[name=password]", "browser-password")
    p.click("button[type=submit]")
    p.wait_for_url(re.compile(r"/$"))

    with committed.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        adjust_balance(session, user_id=user.id, amount=Decimal("10.00"), memo="e2e", ctx=SYSTEM)

    tab.goto("/console")
    card = p.locator("[data-testid=model-image-studio-v2]")
    card.locator("select[name=resolution]").select_option("2048")
    card.locator("input[name=images]").fill("3")
    # The page's own script asks the server for the price (polled from Playwright's side: the CSP forbids eval).
    expect(card.locator("[data-price]")).to_have_text("¥1.50")
    tab.shot("console")
    card.locator("button[value=run]").click()
    p.wait_for_selector("[data-testid=run-result]")
    assert p.inner_text("[data-testid=run-charged]").strip() == "¥1.50"
    assert p.inner_text("[data-testid=console-balance]").strip() == "¥8.50"
    tab.shot("result")

    tab.goto("/")
    assert p.inner_text("[data-testid=balance]").strip() == "¥8.50"
    assert p.inner_text("[data-testid=spent-today]").strip() == "¥1.50"
    assert "Image Studio v2" in p.inner_text("main")  # the recent usage names the model as the console does
    tab.shot("dashboard")
    assert tab.console_errors == []


def test_insufficient_balance_on_console_says_so(page, committed):
    tab, p = page, page.page
    tab.register(f"poor-{page.name[-6:]}@example.com")
    tab.goto("/console")
    card = p.locator("[data-testid=model-motion-video-1]")
    # Short of the price, the card says so and offers a top-up instead of the run (issue 16.4).
    assert not card.locator("button[value=run]").is_visible()
    assert "¥0.00" in card.locator("[data-short]").inner_text()
    assert card.locator("[data-top-up]").get_attribute("href") == "/recharge"
    tab.shot("insufficient")
    assert tab.console_errors == []


def test_top_up_with_the_sandbox_gateway_end_to_end(page, committed):
    tab, p = page, page.page
    tab.register(f"payer-{page.name[-6:]}@example.com")

    tab.goto("/recharge")
    p.click("label[for=preset-100]")
    assert p.is_checked("#preset-100")
    p.wait_for_timeout(300)  # the buttons' colour transitions end before the screenshot
    tab.shot("recharge")
    p.click("form[action$='/recharge'] button[type=submit]")
    p.wait_for_selector("[data-testid=qr] svg")
    assert p.inner_text("[data-testid=order-amount]").strip() == "¥100.00"
    tab.shot("qr")
    order_url = p.url

    # The QR code points at the sandbox's pay page (a phone opens it with the "Open Alipay" button).
    pay_url = p.get_attribute("[data-testid=open-alipay]", "href")
    payer = p.context.new_page()
    payer.goto(pay_url)
    payer.click("[data-testid=sandbox-pay]")
    payer.wait_for_selector("[data-testid=sandbox-notify]")
    assert "HTTP 200 ok" in payer.inner_text("[data-testid=sandbox-notify]")
    payer.close()

    # The order page polls and turns to succeeded by itself.
    p.wait_for_selector("[data-testid=new-balance]", timeout=15000)
    assert p.url == order_url
    assert p.inner_text("[data-testid=new-balance]").strip() == "¥100.00"
    assert p.get_attribute("[data-testid=payment-status] .badge", "data-status") == "succeeded"
    tab.shot("paid")

    tab.goto("/")
    assert p.inner_text("[data-testid=balance]").strip() == "¥100.00"
    assert p.inner_text("[data-testid=header-balance]").strip() == "¥100.00"
    tab.shot("dashboard-after-topup")
    assert tab.console_errors == []


def test_top_up_with_wechat_pay_in_the_sandbox_and_the_pages_in_english(page, committed):
    tab, p = page, page.page
    email = f"wechat-{page.name[-6:]}@example.com"
    tab.register(email)
    narrow = p.viewport_size["width"] < 768

    tab.goto("/recharge")
    assert p.is_checked("#method-alipay")  # Alipay unless the person chooses
    p.click("label[for=method-native]")
    p.fill("#custom_amount", "1500")  # above Alipay's 1,000 a payment, within WeChat Pay's 20,000
    assert p.is_checked("#method-native")
    p.wait_for_timeout(300)  # the options' colour transitions end before the screenshot
    tab.shot("recharge-wechat")
    p.click("form[action$='/recharge'] button[type=submit]")
    p.wait_for_selector("[data-testid=qr] svg")
    assert p.inner_text("[data-testid=order-amount]").strip() == "¥1,500.00"
    assert p.inner_text("[data-testid=scan-with]").strip() == "请使用微信扫码付款。"
    assert p.locator("[data-testid=open-alipay]").count() == 0  # a WeChat code opens no app on this phone
    assert p.is_visible("[data-testid=wechat-phone-warning]") == narrow
    tab.shot("qr-wechat")
    wechat_order = p.url

    tab.goto(f"/lang/en?next={wechat_order.removeprefix(tab.base)}")
    assert p.inner_text("[data-testid=scan-with]").strip() == "Scan with WeChat to pay."
    if narrow:
        assert "photo album" in p.inner_text("[data-testid=wechat-phone-warning]")
    tab.shot("qr-wechat-en")
    tab.goto("/recharge")
    tab.shot("recharge-en")
    p.click("form[action$='/recharge'] button[type=submit]")  # the preset ¥50 with Alipay
    p.wait_for_selector("[data-testid=qr] svg")
    assert p.inner_text("[data-testid=scan-with]").strip() == "Scan with Alipay to pay."
    tab.shot("qr-alipay-en")

    # The person scans the WeChat code with another device: the sandbox's WeChat pay page.
    with committed.session() as session:
        pay_url = session.scalars(
            select(PaymentTransaction.meta["qr"].astext).where(PaymentTransaction.pay_type == "native")
        ).one()
    p.goto(pay_url)
    assert p.inner_text("[data-testid=sandbox-channel]").strip() == "WeChat Pay"
    tab.shot("sandbox-pay-wechat-en")
    p.click("[data-testid=sandbox-pay]")
    p.wait_for_selector("[data-testid=sandbox-notify]")
    assert "HTTP 200 ok" in p.inner_text("[data-testid=sandbox-notify]")
    tab.goto("/sandbox/xorpay/")
    tab.shot("sandbox-orders-en")

    p.goto(wechat_order)
    p.wait_for_selector("[data-testid=new-balance]", timeout=15000)
    assert p.inner_text("[data-testid=new-balance]").strip() == "¥1,500.00"
    assert p.inner_text("[data-testid=order-method]").strip().endswith("WeChat Pay")
    tab.goto("/")
    assert "WeChat Pay" in p.inner_text("main") and "Alipay" in p.inner_text("main")
    tab.shot("dashboard-en")
    assert tab.console_errors == []


def test_invite_link_sign_up_shows_on_the_inviters_page(page, committed, browser):
    tab, p = page, page.page
    suffix = page.name[-6:]
    tab.register(f"host-{suffix}@example.com")
    tab.goto("/invites")
    link = p.input_value("[data-testid=invite-link]")
    assert "/register?invite=" in link
    tab.shot("invites-empty")

    # A friend opens the link in a browser of their own.
    friend = browser.new_context(viewport=p.viewport_size, locale="zh-CN").new_page()
    friend.goto(link)
    assert friend.input_value("input[name=invite]") == link.rsplit("=", 1)[1]
    friend.fill("input[name=email]", f"friend-{suffix}@example.com")
    friend.fill("input[name=password]", "friend-password")
    friend.click("button[type=submit]")
    friend.wait_for_url(re.compile(r"/$"))
    friend.goto(tab.base + "/invites")
    assert f"host-{suffix}"[0] + "***@example.com" in friend.inner_text("[data-testid=my-inviter]")
    friend.context.close()

    tab.goto("/invites")
    assert p.inner_text("[data-testid=invited-count]").strip() == "1"
    assert "f***@example.com" in p.inner_text("[data-testid=invitees]")
    tab.shot("invites")
    assert tab.console_errors == []


def test_sign_the_other_browser_out_from_security(page, committed, browser):
    tab, p = page, page.page
    suffix = page.name[-6:]
    email = f"twice-{suffix}@example.com"
    tab.register(email)

    other = browser.new_context(viewport=p.viewport_size, locale="zh-CN").new_page()
    other.goto(tab.base + "/login")
    other.fill("input[name=email]", email)
    other.fill("input[name=password]", "browser-password")
    other.click("button[type=submit]")
    other.wait_for_url(re.compile(r"/$"))

    tab.goto("/security")
    assert p.locator("[data-testid=sessions] li").count() == 2
    tab.shot("security-two-sessions")
    p.click("[data-testid=revoke-others]")
    p.wait_for_selector(".alert-success")
    assert p.locator("[data-testid=sessions] li").count() == 1

    other.goto(tab.base + "/")  # the other browser's next request finds its session ended
    assert "/login" in other.url
    other.context.close()
    tab.shot("security")
    assert tab.console_errors == []


def test_every_page_works_under_the_content_security_policy(page, committed):
    """CSP violations show up as console errors: every page is opened and must have none."""
    tab, p = page, page.page
    tab.register(f"csp-{page.name[-6:]}@example.com")
    for path in ["/", "/console", "/recharge", "/usage", "/invites", "/account", "/security", "/lang/en?next=/"]:
        tab.goto(path)
        p.wait_for_load_state("networkidle")
        tab.shot(path.strip("/").split("?")[0].replace("/", "-") or "dashboard")
    assert tab.console_errors == []


def test_a_video_job_queues_runs_and_settles_live_on_the_console(page, committed, job_worker):
    tab, p = page, page.page
    email = f"video-{page.name[-6:]}@example.com"
    tab.register(email)
    with committed.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        adjust_balance(session, user_id=user.id, amount=Decimal("10.00"), memo="e2e", ctx=SYSTEM)

    tab.goto("/console")
    card = p.locator("[data-testid=model-motion-video-1]")
    card.locator("input[name=seconds]").fill("4")
    expect(card.locator("[data-price]")).to_have_text("¥3.20")  # the most it can cost: 4 s at 0.80
    card.locator("select[name=outcome]").select_option("short")
    card.locator("button[value=run]").click()
    p.wait_for_url(re.compile(r"/console#jobs$"))
    job = p.locator("[data-testid=video-job]").first
    # The panel follows the job by itself: starting or rendering, then done with what it cost.
    expect(job).to_have_attribute("data-status", "done", timeout=15_000)
    expect(job.locator("[data-testid=captured]")).to_have_text(re.compile(r"¥1\.60$"))  # 2 s produced
    expect(job.locator("[data-testid=released]")).to_have_text(re.compile(r"¥1\.60$"))
    expect(p.locator("[data-testid=header-balance]")).to_have_text("¥8.40")
    tab.shot("video-done")

    tab.goto("/")
    assert p.inner_text("[data-testid=balance]").strip() == "¥8.40"
    assert p.locator("[data-testid=on-hold]").count() == 0  # nothing left on hold
    assert tab.console_errors == []
