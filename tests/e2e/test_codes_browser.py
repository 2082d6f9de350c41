"""Redemption codes in a real browser: a person redeems a code on /recharge (zh, then en)."""

from zoneinfo import ZoneInfo

import pytest

from ledger.services.admin import Admin
from ledger.services.audit import Origin
from ledger.services.code_batches import create_batch
from ledger.services.codes import shown

pytestmark = [pytest.mark.e2e, pytest.mark.committed]


def test_a_person_redeems_a_code_on_the_recharge_page(page, committed):
    tab, p = page, page.page
    tab.register(f"coder-{page.name[-6:]}@example.com")
    with committed.session() as session:
        _batch, (code,) = create_batch(
            session,
            Admin(None, Origin("admin"), via="cli"),
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
