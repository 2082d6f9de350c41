"""Records in a real browser (zh and en, 1366 and 390 px): the receipt of a paid top-up (its copy
button, its print layout), the paged histories of /security and /account, the top-ups CSV; the
static files of a page come fingerprinted and cached, and no page loads Bootstrap's JavaScript."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from ledger.db import atomic
from ledger.models import Actor, AuditLog, PaymentTransaction, User
from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.committed]


def with_history(committed, email: str) -> PaymentTransaction:
    """The person gets 25 balance changes (and their audit events) and one paid top-up of ¥88.50."""
    with committed.session() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        for _ in range(25):
            adjust_balance(session, user_id=user.id, amount=Decimal("1.00"), memo="e2e", ctx=SYSTEM)
        now = datetime.now(UTC)
        order = PaymentTransaction(
            id=uuid.uuid4(),
            user_id=user.id,
            amount=Decimal("88.50"),
            pay_type="native",
            status="succeeded",
            provider_order_id="xp-" + uuid.uuid4().hex[:20],
            meta={},
            paid_at=now,
            expires_at=now + timedelta(minutes=30),
        )
        with atomic(session):
            session.add(order)
            session.add(AuditLog(user_id=user.id, actor=Actor.XORPAY, action="payment.succeeded", details={}))
    return order


def test_receipt_histories_and_csv_in_both_languages(page, committed):
    tab, p = page, page.page
    email = f"records-{uuid.uuid4().hex[:8]}@example.com"
    tab.register(email)
    order = with_history(committed, email)
    p.context.grant_permissions(["clipboard-read", "clipboard-write"])

    loaded: list = []
    p.on("response", lambda r: loaded.append(r))
    tab.goto(f"/recharge/{order.id}/receipt")
    assert p.inner_text("h1") == "收据"
    assert p.inner_text("[data-testid=order-number]") == str(order.id)
    assert p.is_visible("[data-print]")  # shown by print.js
    statics = [r for r in loaded if "/static/" in r.url]
    assert statics and all("?v=" in r.url for r in statics)
    assert all(r.headers["cache-control"] == "public, max-age=31536000, immutable" for r in statics)
    assert not [r.url for r in loaded if "bootstrap.min.js" in r.url or "popper" in r.url]
    p.click("[data-copy]")
    assert p.evaluate("navigator.clipboard.readText()") == str(order.id)
    tab.shot("receipt-zh")
    p.emulate_media(media="print")
    assert not p.is_visible("header.navbar") and not p.is_visible("[data-print]")
    tab.shot("receipt-zh-print")
    p.emulate_media(media="screen")

    tab.goto(f"/recharge/{order.id}")
    p.click("[data-testid=receipt-link]")
    p.wait_for_url(f"**/recharge/{order.id}/receipt")

    tab.goto("/security")
    assert p.locator("[data-testid=events] tbody tr").count() == 20
    tab.shot("security-page1-zh")
    p.click("[data-testid=older]")
    expect(p.locator("[data-testid=events] tbody tr")).to_have_count(8)  # 25 credits, the top-up, registered, signed in
    assert p.is_visible("[data-testid=newest]")
    tab.shot("security-page2-zh")

    tab.goto("/account")
    assert p.locator("[data-testid=ledger] tbody tr").count() == 20
    p.click("[data-testid=older]")
    expect(p.locator("[data-testid=ledger] tbody tr")).to_have_count(5)
    tab.shot("account-page2-zh")

    tab.goto("/recharge")
    with p.expect_download() as download:
        p.click("[data-testid=topups-csv]")
    path = ARTIFACTS / f"{tab.name}-topups.csv"
    ARTIFACTS.mkdir(exist_ok=True)
    download.value.save_as(path)
    lines = path.read_bytes().decode("utf-8").split("\r\n")
    assert lines[0] == "\ufeffcreated_at,transaction_id,amount,pay_type,status,paid_at,provider_order_id"
    assert lines[1].split(",")[1:5] == [str(order.id), "88.50", "native", "succeeded"]
    tab.shot("recharge-zh")

    tab.goto(f"/lang/en?next=/recharge/{order.id}/receipt")
    assert p.inner_text("h1") == "Receipt"
    assert "WeChat Pay" in p.inner_text("[data-testid=receipt-method]")
    tab.shot("receipt-en")
    tab.goto("/security")
    p.click("[data-testid=older]")
    tab.shot("security-page2-en")
    tab.goto("/account")
    tab.shot("account-page1-en")
    tab.goto("/recharge")
    tab.shot("recharge-en")
    assert tab.console_errors == []
