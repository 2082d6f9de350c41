"""A charge's params are the SaaS's data (SPEC 6: any JSON object): in a real browser, in Chinese and
English, on a phone and a desktop, /usage and the console's result show them as text. No link, no
meta refresh, no markup of theirs reaches the page, and the page answers."""

import uuid
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select

from ledger.models import User
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from tests.e2e.conftest import tabs
from tests.helpers import INTERNAL_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.committed]

NOTE = '<a href=https://evil.example/pay>Top up here</a><meta http-equiv=refresh content="5;url=https://evil.example">'
HOSTILE = {"k": "%(x)s", "d": "%d", "note": NOTE}


@pytest.fixture(
    params=[("zh", 390, 844), ("zh", 1366, 900), ("en", 390, 844), ("en", 1366, 900)],
    ids=["zh-390", "zh-1366", "en-390", "en-1366"],
)
def person(request, browser, live_server, committed):
    with tabs(browser, live_server, request.param, "hostile-params") as opened:
        yield opened("person")


def test_hostile_params_read_as_text_on_usage_and_the_console(person, live_server, committed):
    email = f"hostile-{uuid.uuid4().hex[:8]}@example.com"
    person.register(email)
    with committed.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        adjust_balance(session, user_id=user.id, amount=Decimal("10.00"), memo="e2e", ctx=SYSTEM)
    charged = []
    for model in ("their-model", "image-studio-v2"):  # any id, and a console model's id with odd params
        answer = requests.post(
            f"{live_server.url}/api/billing/deduct",
            json={"user_id": str(user.id), "amount": "0.10", "model": model, "request_id": model, "params": HOSTILE},
            headers={"x-internal-token": INTERNAL_KEY},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        charged.append(answer.json()["usage_id"])

    p = person.page
    for path in ("/usage", f"/console?result={charged[1]}"):
        person.goto(path)
        assert p.locator("a[href^='https://evil']").count() == 0, path
        assert p.locator("body meta[http-equiv]").count() == 0, path
        width = p.viewport_size["width"]
        assert p.evaluate("document.documentElement.scrollWidth") <= width, path  # long text wraps or is cut
        if path == "/usage" and width >= 768:  # the params column shows from md up
            cells = p.locator(".params-cell").all_inner_texts()
            assert cells == [f"d: %d · k: %(x)s · note: {NOTE}"] * 2
            titles = [cell.get_attribute("title") for cell in p.locator(".params-cell").all()]
            assert titles == cells  # the whole line on hover, where the column cuts it
        if path.startswith("/console"):
            badges = p.locator("[data-testid=run-result] .badge").all_inner_texts()
            assert badges == ["d: %d", "k: %(x)s", f"note: {NOTE}"]
            assert p.locator(".sim-output").count() == 0  # not simulated: not a console run
        person.shot(path.strip("/").split("?")[0])
    assert person.console_errors == []
