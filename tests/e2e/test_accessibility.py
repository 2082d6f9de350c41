"""Every page passes axe-core's WCAG 2.1 A and AA rules (SPEC 9), in Chinese and English, on a phone
(390 px) and a desktop (1280 px): signed out, signed in, with an order, as an admin, and the XorPay
sandbox's pages. One test per language: it makes the data once, opens every page in one browser
context per person, and checks each page at both widths (the tab is resized: the same document, laid
out by the other width's styles). Any violation fails, named with the page, the width, the rule and
the nodes."""

import dataclasses
import re
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from sqlalchemy import select

from ledger.models import User
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from ledger.services.growth import plans
from tests.e2e.conftest import Page, tabs
from tests.helpers import CLI_ADMIN, INTERNAL_KEY

INTERNAL = {"x-internal-token": INTERNAL_KEY}

pytestmark = [pytest.mark.e2e, pytest.mark.committed]

WCAG_21_AA = {"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}
# Best practices held to as well: every page says what it is in one h1, inside one main landmark.
ALSO = {"page-has-heading-one", "landmark-one-main", "landmark-unique", "heading-order"}
# axe.min.js (570 kB) is in every document the tabs open, as an init script, instead of being sent
# through Playwright again for each page; only the violations come back.
AXE_RUN = 'async () => (await axe.run(document, {resultTypes: ["violations"]})).violations'


# The widths every page is checked at: a phone and a desktop. Tabs open at the first.
WIDTHS = ({"width": 390, "height": 844}, {"width": 1280, "height": 900})


def violations(tab: Page, label: str) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now, at each width, one line per
    rule and node; the tab is left at the first width."""
    tab.page.wait_for_load_state(
        "load"
    )  # the pages build nothing late that axe should wait for (networkidle cost 0.5 s a page)
    found = []
    for size in (*WIDTHS[1:], WIDTHS[0]):
        tab.page.set_viewport_size(size)
        where = f"{label} at {size['width']} px ({tab.name})"
        for rule in tab.page.evaluate(AXE_RUN):
            tags = set(rule["tags"])
            if not (tags & WCAG_21_AA or rule["id"] in ALSO):
                print(f"(best practice) {where}: {rule['id']} {[n['target'] for n in rule['nodes']]}")
                continue
            for node in rule["nodes"]:
                why = node["failureSummary"].replace("\n", " ")
                found.append(f"{where}: {rule['id']} ({rule['impact']}) {' '.join(map(str, node['target']))}: {why}")
        tab.shot(f"{label.replace('/', '-')}-{size['width']}")
    return found


@pytest.fixture(params=["zh", "en"])
def people(request, browser, live_server, committed):
    """Opens tabs in the language, each in a browser context of its own (its own cookies)."""
    param = (request.param, WIDTHS[0]["width"], WIDTHS[0]["height"])
    with tabs(browser, live_server, param, "axe", init_script=AXE_SCRIPT) as opened:
        yield opened


def test_every_page_passes_axe_wcag_21_aa(people, live_server, committed, monkeypatch):
    found: list[str] = []
    config = dataclasses.replace(live_server.app.config["LEDGER"], PORTAL_RETURN_HOSTS="app.saas.example")
    monkeypatch.setitem(live_server.app.config, "LEDGER", config)

    # Signed out: the forms, empty and refused.
    visitor = people("visitor")
    for path in ("/login", "/register"):
        visitor.goto(path)
        found += violations(visitor, path.strip("/"))
    visitor.page.fill("input[name=email]", "not-an-email")
    visitor.page.click("main button[type=submit]")
    found += violations(visitor, "register-refused")

    # A person with money, a run on the console, an unpaid and a paid order.
    email = f"axe-{people.language}@example.com"
    person = people("person")
    person.register(email)
    with committed.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        adjust_balance(session, user_id=user.id, amount=Decimal("10.00"), memo="axe", ctx=SYSTEM)
    p = person.page
    person.goto("/console")
    found += violations(person, "console")
    p.locator("[data-testid=model-image-studio-v2] button[value=run]").click()
    p.wait_for_selector("[data-testid=run-result]")
    found += violations(person, "console-result")

    person.goto("/recharge")
    found += violations(person, "recharge")
    p.click("form[action$='/recharge'] button[type=submit]")
    p.wait_for_selector("[data-testid=qr] svg")
    found += violations(person, "order-pending")
    order_url = p.url

    # The sandbox's pages: its order list, the pay page, the page after paying.
    sandbox = people("sandbox")
    sandbox.goto("/sandbox/xorpay/")
    found += violations(sandbox, "sandbox-orders")
    sandbox.page.click("[data-testid=sandbox-orders] a")
    sandbox.page.wait_for_selector("[data-testid=sandbox-pay]")
    found += violations(sandbox, "sandbox-pay")
    sandbox.page.click("[data-testid=sandbox-pay]")
    sandbox.page.wait_for_selector("[data-testid=sandbox-notify]")
    found += violations(sandbox, "sandbox-paid")

    p.wait_for_selector("[data-testid=new-balance]", timeout=15000)  # the order page follows by itself
    assert p.url == order_url
    found += violations(person, "order-paid")
    person.goto(urlsplit(order_url).path.rstrip("/") + "/receipt")
    found += violations(person, "receipt")
    for path in ("/", "/usage", "/invites", "/account", "/api/docs", "/no-such-page", "/security"):
        person.goto(path)
        found += violations(person, path.strip("/") or "dashboard")
    p.fill("[name=current]", "wrong-password")
    p.click("form[action$='/security/password'] button[type=submit]")
    found += violations(person, "security-refused")

    # Plans (SPEC 21): those on sale, then one subscribed (its allowance left, cancel), the dashboard's line.
    with committed.session() as session:
        for code, zh, en, period, price in (
            ("pro", "专业版", "Pro", "month", "5.00"),
            ("weekly", "周卡", "Weekly", "week", "90"),
        ):
            plans.create_plan(
                session, CLI_ADMIN, code=code, name_zh=zh, name_en=en, price=price, period=period, allowance="8.00",
                reason="axe",
            )  # fmt: skip
    person.goto("/plans")
    found += violations(person, "plans")
    p.click("[data-plan=pro] [data-testid=subscribe]")
    p.wait_for_selector("[data-testid=holding]")
    found += violations(person, "plans-subscribed")
    person.goto("/")
    p.wait_for_selector("[data-testid=plan-line]")
    found += violations(person, "dashboard-plan")

    # The back office.
    made = live_server.app.test_cli_runner().invoke(
        args=["users", "create", f"boss-{people.language}@example.com", "--password", "admin-password", "--admin"]
    )
    assert made.exit_code == 0, made.output
    admin = people("admin")
    a = admin.page
    admin.goto("/login")
    a.fill("input[name=email]", f"boss-{people.language}@example.com")
    a.fill("input[name=password]", "admin-password")
    a.click("main button[type=submit]")
    a.wait_for_url(f"{admin.base}/")
    admin_pages = ("/admin", "/admin/users", f"/admin/users?q={email}", "/admin/orders", "/admin/audit")
    for path in (*admin_pages, "/admin/plans", "/admin/plans/pro", "/admin/codes"):  # codes last: its form is next
        admin.goto(path)
        found += violations(admin, path.strip("/").replace("/", "-").split("?")[0] + ("-search" if "?" in path else ""))
    a.locator("[data-testid=create-codes] [name=count]").fill("2")
    a.locator("[data-testid=create-codes] [name=amount]").fill("5.00")
    a.locator("[data-testid=create-codes] [name=reason]").fill("axe")
    a.click("[data-testid=create-codes] button[type=submit]")
    a.wait_for_selector("[data-testid=confirm]")
    found += violations(admin, "admin-confirm")
    a.click("[data-testid=confirm]")
    a.wait_for_url(re.compile(r"/admin/codes/batches/"))
    found += violations(admin, "admin-code-batch")
    admin.goto(f"/admin/users?q={email}")
    a.click(f"[data-testid=people] a:text-is('{email}')")
    a.wait_for_url(re.compile(r"/admin/users/[0-9a-f-]{36}$"))
    found += violations(admin, "admin-person")
    a.click("main a[href*='/admin/orders/']")
    a.wait_for_url(re.compile(r"/admin/orders/[0-9a-f-]{36}$"))
    found += violations(admin, "admin-order")

    # A person the SaaS's backend made (SPEC 25), in through a portal link: no password yet, a way back.
    api = live_server.app.test_client()
    made = api.post("/api/users", json={"email": f"portal-{people.language}@example.com"}, headers=INTERNAL)
    link = api.post(
        f"/api/users/{made.get_json()['user_id']}/portal",
        json={"next": "/account", "return_url": "https://app.saas.example/billing"},
        headers=INTERNAL,
    ).get_json()
    portal = people("portal")
    portal.page.goto(link["url"])
    portal.page.wait_for_selector("[data-testid=set-password]")
    found += violations(portal, "account-portal")
    portal.goto("/security")
    found += violations(portal, "security-portal")

    if found:
        pytest.fail(f"{len(found)} axe-core violations:\n" + "\n".join(found), pytrace=False)
