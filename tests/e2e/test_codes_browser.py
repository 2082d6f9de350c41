"""Redemption codes in a real browser: a person redeems a code on /recharge (zh, then en); an admin
creates a batch, confirms it, downloads its CSV and looks a code up."""

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from ledger.models import User
from ledger.services.growth.code_batches import create_batch
from ledger.services.growth.codes import shown
from tests.helpers import CLI_ADMIN

pytestmark = [pytest.mark.e2e, pytest.mark.committed]


def test_a_person_redeems_a_code_on_the_recharge_page(page, committed):
    tab, p = page, page.page
    tab.register(f"coder-{page.name[-6:]}@example.com")
    with committed.session() as session:
        _batch, (code,) = create_batch(
            session,
            CLI_ADMIN,
            count=1,
            amount="50.00",
            expires=None,
            note=None,
            reason="e2e",
            tz=ZoneInfo("Asia/Shanghai"),
        )

    tab.goto("/recharge")
    tab.shot("recharge-code")
    p.fill("[data-testid=redeem-form] input[name=code]", " " + shown(code).lower().replace("-", " "))
    p.click("[data-testid=redeem-form] button[type=submit]")
    p.wait_for_selector(".alert-success")
    assert "¥50.00" in p.inner_text(".alert-success")
    assert p.inner_text("[data-testid=header-balance]").strip() == "¥50.00"
    tab.shot("code-redeemed")

    p.fill("[data-testid=redeem-form] input[name=code]", shown(code))
    p.click("[data-testid=redeem-form] button[type=submit]")
    p.wait_for_selector("[data-testid=redeem-error]")
    assert "已被使用" in p.inner_text("[data-testid=redeem-error]")
    tab.shot("code-used")

    tab.goto("/lang/en?next=/recharge")
    p.fill("[data-testid=redeem-form] input[name=code]", "ABCD-EFGH-JKLM-NPQ")
    p.click("[data-testid=redeem-form] button[type=submit]")
    p.wait_for_selector("[data-testid=redeem-error]")
    assert "no such code" in p.inner_text("[data-testid=redeem-error]")
    tab.shot("code-unknown-en")
    refused = "Failed to load resource: the server responded with a status of 422"  # the refused posts
    assert [e for e in tab.console_errors if not e.startswith(refused)] == []


def test_an_admin_creates_a_batch_and_downloads_it(page, committed):
    tab, p = page, page.page
    email = f"boss-{page.name[-6:]}@example.com"
    tab.register(email)
    with committed.session() as session, session.begin():
        session.execute(update(User).where(User.email == email).values(is_admin=True))

    tab.goto("/admin/codes")
    form = p.locator("[data-testid=create-codes]")
    form.locator("input[name=count]").fill("3")
    form.locator("input[name=amount]").fill("20.00")
    form.locator("input[name=note]").fill("经销商 A")
    form.locator("textarea[name=reason]").fill("first reseller")
    tab.shot("admin-codes")
    form.locator("button[type=submit]").click()
    p.wait_for_selector("[data-testid=effect]")
    assert "¥60.00" in p.inner_text("[data-testid=effect]")
    tab.shot("admin-codes-confirm")
    p.click("[data-testid=confirm]")
    p.wait_for_url(re.compile(r"/admin/codes/batches/"))
    tab.shot("admin-code-batch")

    with p.expect_download() as download:
        p.click("[data-testid=download]")
    body = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert body.splitlines()[0] == "code,amount,expires,status" and len(body.splitlines()) == 4

    tab.goto("/admin/codes?code=" + body.splitlines()[1].split(",")[0].lower())
    p.wait_for_selector("[data-testid=code]")
    tab.shot("admin-code-lookup")
    tab.goto("/lang/en?next=/admin/codes")
    assert "3 codes" not in p.inner_text("main") and "1 batch" in p.inner_text("main")
    tab.shot("admin-codes-en")
    assert tab.console_errors == []
