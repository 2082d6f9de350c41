"""The back office in a real browser (SPEC 13-15), through its pages only: a person tops up ¥100
with the XorPay sandbox; an admin signs in, finds them, credits ¥50, refunds ¥30 of the top-up and
makes a batch of ¥20 codes; the person redeems one. ¥100 + ¥50 - ¥30 + ¥20 = ¥140, and
`flask ledger verify` finds the books sound. Chinese on a wide screen, English on a phone."""

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, Page, tabs

pytestmark = [pytest.mark.e2e, pytest.mark.committed]

REFUNDED = {"zh": "已退款", "en": "Refunded"}


@pytest.fixture(params=[("zh", 1366, 900), ("en", 390, 844)], ids=["zh-wide", "en-narrow"])
def desk(request, browser, live_server, committed):
    """Opens tabs in a language and a viewport, each in a browser of its own (its own cookies)."""
    with tabs(browser, live_server, request.param, "back-office") as opened:
        yield opened


def sign_in(tab: Page, email: str, password: str) -> None:
    tab.goto("/login")
    tab.page.fill("input[name=email]", email)
    tab.page.fill("input[name=password]", password)
    tab.page.click("button[type=submit]")
    tab.page.wait_for_url(f"{tab.base}/")


def top_up_100_with_the_sandbox(tab: Page) -> None:
    p = tab.page
    tab.goto("/recharge")
    p.click("label[for=preset-100]")
    p.click("form[action$='/recharge'] button[type=submit]")
    p.wait_for_selector("[data-testid=qr] svg")
    payer = p.context.new_page()  # the phone that scans the code: the sandbox's Alipay page
    payer.goto(p.get_attribute("[data-testid=open-alipay]", "href"))
    payer.click("[data-testid=sandbox-pay]")
    payer.wait_for_selector("[data-testid=sandbox-notify]")
    assert "HTTP 200 ok" in payer.inner_text("[data-testid=sandbox-notify]")
    payer.close()
    p.wait_for_selector("[data-testid=new-balance]", timeout=15000)
    assert p.inner_text("[data-testid=new-balance]").strip() == "¥100.00"


def confirm(tab: Page, form: str, fields: dict[str, str], effect: list[str]) -> None:
    """Fill an admin action's form, check its confirmation step shows `effect`, then confirm."""
    p = tab.page
    for name, value in fields.items():
        p.locator(f"[data-testid={form}] [name={name}]").fill(value)
    p.click(f"[data-testid={form}] button[type=submit]")
    p.wait_for_selector("[data-testid=effect]")
    shown = p.inner_text("[data-testid=effect]")
    assert all(line in shown for line in effect), shown
    tab.shot(f"{form}-confirm")
    p.click("[data-testid=confirm]")
    p.wait_for_selector(".alert-success")


def test_an_admin_adjusts_refunds_and_issues_codes_that_the_person_redeems(desk, live_server, database_url):
    person_email, admin_email = f"customer-{desk.language}@example.com", f"boss-{desk.language}@example.com"
    person = desk("person")
    person.register(person_email, "person-password")
    top_up_100_with_the_sandbox(person)
    person.page.click("header button[type=submit]")  # sign out until the end
    person.page.wait_for_url(re.compile(r"/login"))

    made = live_server.app.test_cli_runner().invoke(
        args=["users", "create", admin_email, "--password", "admin-password", "--admin"]
    )
    assert made.exit_code == 0, made.output
    desk_tab = desk("admin")
    tab, p = desk_tab, desk_tab.page
    sign_in(tab, admin_email, "admin-password")

    # Find the person and credit ¥50.
    tab.goto("/admin")
    assert p.locator("[data-testid=low-balance]").count() == 0  # the admin's own ¥0.00 is not the subject here
    tab.shot("overview")
    p.click("[data-testid=admin-nav] a[href$='/admin/users']")
    p.fill("input[name=q]", "CUSTOMER-")
    p.click("form[role=search] button[type=submit]")
    expect(p.locator("[data-testid=people] li")).to_have_count(1)  # waits for the results page
    p.click(f"[data-testid=people] a:text-is('{person_email}')")
    p.wait_for_url(re.compile(r"/admin/users/[0-9a-f-]{36}$"))
    person_page = p.url
    assert p.inner_text("[data-testid=person-balance]").strip() == "¥100.00"
    confirm(tab, "adjust", {"amount": "50.00", "reason": "goodwill for an outage"}, [person_email, "¥100.00 → ¥150.00"])
    assert p.url == person_page
    assert p.inner_text("[data-testid=person-balance]").strip() == "¥150.00"
    assert "+¥50.00" in p.inner_text("[data-testid=entries] tbody tr >> nth=0")
    tab.shot("person")

    # Refund ¥30 of the ¥100 top-up.
    p.click("main a[href*='/admin/orders/']")
    p.wait_for_url(re.compile(r"/admin/orders/[0-9a-f-]{36}$"))
    assert p.get_attribute("[data-testid=order-status] .badge", "data-status") == "succeeded"
    confirm(
        tab,
        "refund",
        {"amount": "30.00", "reason": "charged twice for one month"},
        ["¥30.00", "¥100.00", "¥150.00 → ¥120.00"],
    )
    assert p.inner_text("[data-testid=refund-status]").strip() == REFUNDED[desk.language]
    assert "¥30.00" in p.inner_text("[data-testid=refunds]")
    assert p.inner_text("[data-testid=refunded] .money").strip() == "¥30.00"
    tab.shot("order-refunded")
    p.click(f"main a:text-is('{person_email}')")
    assert p.inner_text("[data-testid=person-balance]").strip() == "¥120.00"

    # A batch of three ¥20 codes, downloaded as CSV.
    p.click("[data-testid=admin-nav] a[href$='/admin/codes']")
    confirm(
        tab,
        "create-codes",
        {"count": "3", "amount": "20.00", "note": "support desk", "reason": "apology codes"},
        ["¥60.00"],
    )
    assert re.search(r"/admin/codes/batches/[0-9a-f-]{36}$", p.url)
    with p.expect_download() as download:
        p.click("[data-testid=download]")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["code", "amount", "expires", "status"] and len(rows) == 4
    assert all(re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", row[0]) and row[1:3] == ["20.00", ""] for row in rows[1:])
    assert len({row[0] for row in rows[1:]}) == 3
    tab.goto("/admin/audit")
    trail = p.inner_text("main")
    assert person_email in trail and admin_email in trail  # people by their email, not their id
    assert all(why in trail for why in ("goodwill for an outage", "charged twice for one month", "apology codes"))
    assert tab.console_errors == []

    # The person signs in and redeems one of the codes.
    sign_in(person, person_email, "person-password")
    assert person.page.inner_text("[data-testid=header-balance]").strip() == "¥120.00"
    person.goto("/recharge")
    person.page.fill("[data-testid=redeem-form] input[name=code]", rows[2][0])
    person.page.click("[data-testid=redeem-form] button[type=submit]")
    person.page.wait_for_selector(".alert-success")
    assert "¥20.00" in person.page.inner_text(".alert-success")
    assert person.page.inner_text("[data-testid=header-balance]").strip() == "¥140.00"
    person.shot("redeemed")
    person.goto("/account")
    history = person.page.inner_text("[data-testid=ledger]")
    assert all(line in history for line in ("+¥100.00", "+¥50.00", "-¥30.00", "+¥20.00")), history
    # The top-up's own page and its receipt say what was refunded.
    person.goto("/recharge")
    person.page.click("a.order-id-short:visible, a[data-testid=reopen-order]:visible")  # a phone hides the id
    person.page.wait_for_selector("[data-testid=order-refunds]")
    assert person.page.inner_text("[data-testid=order-refund] .money").strip() == "¥30.00"
    person.shot("order-refunded")
    person.page.click("a[data-testid=receipt-link]")
    person.page.wait_for_selector("[data-testid=receipt-refunds]")
    assert "¥30.00" in person.page.inner_text("[data-testid=receipt-refund]")
    person.shot("receipt-refunded")
    assert person.console_errors == []

    env = {**os.environ, "DATABASE_URL": database_url, "LEDGER_ENV": "testing"}
    verified = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "ledger", "verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (verified.returncode, verified.stdout) == (0, "ledger verified: no breach\n"), verified.stderr
