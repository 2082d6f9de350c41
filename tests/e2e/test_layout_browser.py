"""The pages fit the screen (SPEC 9), in Chinese and English: on a phone (390 px) nothing scrolls
sideways, every item of the main navigation shows whole, and the back office's orders fit without a
sideways scroll; on a desktop (1280 px) /usage shows a console run's parameters whole."""

from decimal import Decimal

import pytest

from tests import factories
from tests.e2e.conftest import tabs
from tests.factories import PASSWORD, PaymentFactory, UserFactory
from tests.helpers import charge

pytestmark = [pytest.mark.e2e, pytest.mark.committed]

PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}
PAGES = ("/", "/recharge", "/usage", "/plans", "/invites", "/account", "/admin/orders", "/admin/users", "/admin/plans")
LONG_PROMPT = "A watercolour lighthouse on a cliff at dusk, gulls circling, long exposure of the waves " * 3


@pytest.fixture(params=["zh", "en"])
def admin(request, browser, live_server, committed):
    """An admin with money, console runs, an API charge with a long prompt and orders, signed in."""
    with committed.session() as session:
        factories.bind(session)
        user = UserFactory(email=f"layout-{request.param}@example.com", is_admin=True, balance="100.00")
        charge(session, user, "3.20", "c1", params={"resolution": "2048", "images": 8})
        charge(session, user, "1.20", "c2", model="chat-pro", params={"tier": "long-context", "tokens": 20000})
        charge(session, user, "0.75", "c3", model="their-model", params={"prompt": LONG_PROMPT, "seed": 12345})
        for n in range(3):
            PaymentFactory(user=user, amount=Decimal(f"{10 * (n + 1)}.00"))
        session.commit()
        factories.bind(None)
    with tabs(browser, live_server, (request.param, PHONE["width"], PHONE["height"]), "layout") as opened:
        tab = opened("admin")
        tab.goto("/login")
        tab.page.fill("input[name=email]", user.email)
        tab.page.fill("input[name=password]", PASSWORD)
        tab.page.click("main button[type=submit]")
        tab.page.wait_for_url(f"{tab.base}/")
        yield tab


# Each link of the header's navigation: whole inside the window, and what the window shows at its middle.
NAV_CUT = """() => [...document.querySelectorAll("header nav .nav-link")].filter(a => {
  const r = a.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return r.left < 0 || r.right > innerWidth || a.scrollWidth > a.clientWidth || !(top && a.contains(top));
}).map(a => a.textContent.trim())"""


def test_a_phone_shows_every_page_and_every_item_of_the_navigation_whole(admin):
    p = admin.page
    for path in PAGES:
        admin.goto(path)
        assert p.evaluate("document.documentElement.scrollWidth <= innerWidth"), path
        assert p.locator("header nav .nav-link").count() == 9, path
        assert p.evaluate(NAV_CUT) == [], path
    admin.goto("/admin/orders")  # the table fits too: no sideways scroll inside its box
    assert p.evaluate("[...document.querySelectorAll('.table-responsive')].every(b => b.scrollWidth <= b.clientWidth)")
    link = p.locator("[data-testid=orders] a.order-id-narrow").first
    full = link.get_attribute("title")
    assert len(full) == 36 and link.inner_text() == full  # 8 characters show, the whole id is the link's text
    assert link.bounding_box()["height"] < 30  # one line, not four
    admin.shot("admin-orders")


def test_a_desktop_shows_a_console_runs_parameters_whole_on_usage(admin):
    p = admin.page
    p.set_viewport_size(DESKTOP)
    admin.goto("/usage")
    lines = p.locator("[data-testid=details] .params-line")
    cut = "e => e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth"
    rows = [("prompt: " in text, lines.nth(n).evaluate(cut)) for n, text in enumerate(lines.all_inner_texts())]
    # (an API charge's long prompt?, cut?): the console's two runs whole, the prompt at three lines cut ...
    assert sorted(rows) == [(False, False), (False, False), (True, True)]
    title = p.locator("[data-testid=details] .params-cell").first.get_attribute("title")
    assert LONG_PROMPT.strip() in title  # ... the whole of it on hover
    admin.shot("usage")
