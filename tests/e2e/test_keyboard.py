"""The main tasks with the keyboard only (Tab, arrows, typing, Enter), as a person who cannot use a
mouse does them: sign in, top up through the sandbox, run a model, download the usage CSV, bind an
invite code, change the password, and in the back office find a person and adjust their balance.
Along the way: the skip link is the first Tab stop, the focus ring is drawn and stands out (>= 3:1
against what surrounds it), and after a post the focus is on the result or on what went wrong."""

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from ledger.models import PaymentTransaction, User
from tests.e2e.conftest import Page, tabs

pytestmark = [pytest.mark.e2e, pytest.mark.committed]

# What the keyboard's focus looks like: the element drawing the ring (a visually hidden radio's label
# draws it), the ring's style and width, and its contrast with the colour just outside it.
FOCUS_RING = """() => {
  let el = document.activeElement;
  if (el.matches('.btn-check') && el.nextElementSibling) el = el.nextElementSibling;
  const style = getComputedStyle(el);
  const rgba = (c) => { const [r, g, b, a = 1] = c.match(/[\\d.]+/g).map(Number); return {r, g, b, a}; };
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ({r, g, b}) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  // The colour the ring is drawn on: what lies just left (or right) of the element, past the ring.
  const box = el.getBoundingClientRect(), gap = parseFloat(style.outlineOffset) + parseFloat(style.outlineWidth) / 2;
  const x = box.left - gap > 0 ? box.left - gap : box.right + gap, y = box.top + Math.min(box.height / 2, 10);
  let under = document.elementsFromPoint(x, y).find((n) => n !== el && !el.contains(n)) || document.body;
  let behind = {r: 255, g: 255, b: 255, a: 1};
  for (; under; under = under.parentElement) {
    const c = rgba(getComputedStyle(under).backgroundColor);
    if (c.a > 0) { behind = c; break; }
  }
  const [hi, lo] = [lum(rgba(style.outlineColor)), lum(behind)].sort((a, b) => b - a);
  return {style: style.outlineStyle, width: parseFloat(style.outlineWidth), contrast: (hi + 0.05) / (lo + 0.05),
          what: el.tagName + (el.id ? '#' + el.id : '') + ' ' + (el.textContent || el.value || '').trim().slice(0, 30)};
}"""


def focused(p, selector: str) -> bool:
    return p.evaluate("(selector) => document.activeElement.matches(selector)", selector)


def assert_focus_moves_to(p, selector: str) -> None:
    """After a page loads, the browser moves the focus to its autofocus element at its next frame."""
    for _ in range(20):
        if focused(p, selector):
            return
        p.wait_for_timeout(100)
    raise AssertionError(f"the focus is on {p.evaluate('() => document.activeElement.outerHTML')}, not {selector}")


def tab_to(p, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus."""
    for _ in range(limit):
        p.keyboard.press("Tab")
        if focused(p, selector):
            return
    raise AssertionError(f"{selector} not reached in {limit} Tab presses")


def press_enter_and_load(p) -> None:
    """Enter on a form: wait for the page that answers the post."""
    with p.expect_navigation():
        p.keyboard.press("Enter")


def assert_focus_visible(p) -> None:
    ring = p.evaluate(FOCUS_RING)
    assert ring["style"] != "none" and ring["width"] >= 2, ring
    assert ring["contrast"] >= 3, ring


def skip_link_first(tab: Page, path: str) -> None:
    """The page's first Tab stop is the skip link, drawn with a visible ring; Enter moves past the header."""
    p = tab.page
    tab.goto(path)
    p.keyboard.press("Tab")
    assert focused(p, "a.skip-link"), path
    assert p.is_visible("a.skip-link")
    assert_focus_visible(p)
    tab.shot("skip-link" + path.replace("/", "-").rstrip("-"))
    p.keyboard.press("Enter")
    assert focused(p, "main"), path
    p.keyboard.press("Tab")  # the next stop is inside the page's content, not the header
    assert p.evaluate("() => document.querySelector('main').contains(document.activeElement)"), path


@pytest.fixture(params=[("zh", 1280, 900), ("en", 390, 844)], ids=["zh-1280", "en-390"])
def keyboard(request, browser, live_server, committed):
    with tabs(browser, live_server, request.param, "keyboard") as opened:
        yield opened


def sign_in_by_keyboard(tab: Page, email: str, password: str) -> None:
    p = tab.page
    tab.goto("/login")
    assert_focus_moves_to(p, "input[name=email]")  # the form's first field has the focus already
    assert_focus_visible(p)
    p.keyboard.type(email)
    p.keyboard.press("Tab")
    assert focused(p, "input[name=password]")
    assert_focus_visible(p)
    p.keyboard.type(password)
    p.keyboard.press("Enter")
    p.wait_for_url(f"{tab.base}/")


def test_the_main_tasks_by_keyboard_alone(keyboard, live_server, committed):
    language = keyboard.language
    email, friend = f"keys-{language}@example.com", f"friend-{language}@example.com"
    for who in (email, friend):
        made = live_server.app.test_cli_runner().invoke(args=["users", "create", who, "--password", "old-password"])
        assert made.exit_code == 0, made.output
    with committed.session() as session:
        friend_code = session.scalars(select(User.invite_code).where(User.email == friend)).one()

    tab = keyboard("person")
    p = tab.page

    # Sign in: a wrong password first; the refusal takes the focus.
    tab.goto("/login")
    p.keyboard.type(email)
    p.keyboard.press("Tab")
    p.keyboard.type("wrong-password")
    press_enter_and_load(p)
    assert_focus_moves_to(p, "[role=alert], [aria-invalid=true]")
    assert_focus_visible(p)
    tab.shot("sign-in-refused")
    sign_in_by_keyboard(tab, email, "old-password")
    skip_link_first(tab, "/")
    tab.goto("/")
    tab_to(p, "header nav a.nav-link")  # the ring on the dark header is white
    assert_focus_visible(p)
    tab.shot("header-focus")

    # Top up ¥100 through the sandbox: the preset chosen with the arrow keys, paid on the "phone".
    tab.goto("/recharge")
    tab_to(p, "input[name=amount]:checked")
    assert_focus_visible(p)
    p.keyboard.press("ArrowRight")
    assert focused(p, "#preset-100:checked")
    assert_focus_visible(p)
    p.wait_for_timeout(300)  # the buttons' colour transitions end before the screenshot
    tab.shot("recharge-preset")
    tab_to(p, "form[action$='/recharge'] button[type=submit]")
    assert_focus_visible(p)
    p.keyboard.press("Enter")
    p.wait_for_selector("[data-testid=qr] svg")
    phone = p.context.new_page()  # the phone that scans the code: the sandbox's pay page
    with committed.session() as session:
        phone.goto(session.scalars(select(PaymentTransaction.meta["qr"].astext)).one())
    tab_to(phone, "[data-testid=sandbox-pay]")
    assert_focus_visible(phone)
    phone.keyboard.press("Enter")
    phone.wait_for_selector("[data-testid=sandbox-notify]")
    phone.close()
    p.wait_for_selector("[data-testid=new-balance]", timeout=15000)
    assert p.inner_text("[data-testid=new-balance]").strip() == "¥100.00"

    # Run a model: after the run the focus is on its result, which is announced.
    tab.goto("/console")
    tab_to(p, "[data-testid=model-image-studio-v2] button[value=run]")
    assert_focus_visible(p)
    p.keyboard.press("Enter")
    p.wait_for_selector("[data-testid=run-result]")
    assert_focus_moves_to(p, "[data-testid=run-result][role=status]")
    assert_focus_visible(p)
    tab.shot("console-result")

    # Download the usage CSV.
    tab.goto("/usage")
    tab_to(p, "[data-testid=csv-link]")
    assert_focus_visible(p)
    with p.expect_download() as download:
        p.keyboard.press("Enter")
    rows = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 2 and "image-studio-v2" in rows[1]

    # Bind an invite code: an unknown code first; the field keeps the focus and says why.
    tab.goto("/invites")
    tab_to(p, "input#code")
    p.keyboard.type("NOSUCHCODE")
    p.keyboard.press("Enter")
    p.wait_for_selector("[data-testid=bind-error]")
    assert_focus_moves_to(p, "input#code[aria-invalid=true]")
    assert_focus_visible(p)
    tab.shot("invite-refused")
    p.keyboard.press("ControlOrMeta+a")
    p.keyboard.type(friend_code)
    p.keyboard.press("Enter")
    p.wait_for_selector("[data-testid=my-inviter]")
    assert "f***@example.com" in p.inner_text("[data-testid=my-inviter]")
    assert p.locator("main [role=status]").count() >= 1

    # Change the password: a wrong current password first.
    tab.goto("/security")
    tab_to(p, "input[name=current]")
    assert_focus_visible(p)
    p.keyboard.type("not-my-password")
    for value in ("new-password-1", "new-password-1"):
        p.keyboard.press("Tab")
        p.keyboard.type(value)
    press_enter_and_load(p)
    assert_focus_moves_to(p, "[role=alert], [aria-invalid=true]")
    assert_focus_visible(p)
    tab.shot("password-refused")
    tab_to(p, "input[name=current]")
    p.keyboard.press("ControlOrMeta+a")
    p.keyboard.type("old-password")
    for value in ("new-password-1", "new-password-1"):
        p.keyboard.press("Tab")
        p.keyboard.press("ControlOrMeta+a")
        p.keyboard.type(value)
    p.keyboard.press("Enter")
    p.wait_for_selector("main .alert-success[role=status]")
    tab.shot("password-changed")
    assert [e for e in tab.console_errors if "status of 4" not in e] == []  # the refused posts answer 4xx

    # The back office: find the person, credit ¥5.
    made = live_server.app.test_cli_runner().invoke(
        args=["users", "create", f"desk-{language}@example.com", "--password", "admin-password", "--admin"]
    )
    assert made.exit_code == 0, made.output
    desk = keyboard("admin")
    d = desk.page
    sign_in_by_keyboard(desk, f"desk-{language}@example.com", "admin-password")
    skip_link_first(desk, "/admin")
    desk.goto("/admin/users")
    tab_to(d, "input[name=q]")
    assert_focus_visible(d)
    d.keyboard.type(f"KEYS-{language}")
    d.keyboard.press("Enter")
    d.wait_for_selector("[data-testid=people] li")
    tab_to(d, "[data-testid=people] a[href*='/admin/users/']")
    assert d.evaluate("() => document.activeElement.textContent") == email
    assert_focus_visible(d)
    d.keyboard.press("Enter")
    d.wait_for_url(re.compile(r"/admin/users/[0-9a-f-]{36}$"))
    tab_to(d, "[data-testid=adjust] [name=amount]")
    assert_focus_visible(d)
    d.keyboard.type("5.00")
    tab_to(d, "[data-testid=adjust] [name=reason]")
    d.keyboard.type("keyboard goodwill")
    tab_to(d, "[data-testid=adjust] button[type=submit]")
    assert_focus_visible(d)
    d.keyboard.press("Enter")
    d.wait_for_selector("[data-testid=confirm]")
    tab_to(d, "[data-testid=confirm]")
    assert_focus_visible(d)
    desk.shot("adjust-confirm")
    d.keyboard.press("Enter")
    d.wait_for_selector("main .alert-success[role=status]")
    assert d.inner_text("[data-testid=person-balance]").strip() == "¥104.80"  # 100 + 5 - 0.20 for the run
    desk.shot("adjusted")
    assert desk.console_errors == []
