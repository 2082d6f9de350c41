"""/: the dashboard."""

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from tests.factories import PaymentFactory, UsageFactory, UserFactory
from tests.helpers import at, kinds_line, settle_by_notify, stop_the_clock

NOW = at("2026-12-01 10:00")  # the app's clock in the tests of the balance's kinds
END_OF_JANUARY = at("2027-01-31 23:59:59")


def gift(session, user, amount: str, expires_at=None) -> None:
    """An admin's credit (given money) at NOW, expiring at `expires_at` (None: never)."""
    ctx = replace(SYSTEM, clock=lambda: NOW)
    adjust_balance(session, user_id=user.id, amount=Decimal(amount), memo="gift", ctx=ctx, expires_at=expires_at)


def header_title(page: str) -> str:
    start = page.index('data-testid="header-balance"')
    tag = page[page.rindex("<span", 0, start) : start]
    return tag[tag.index('title="') + 7 : tag.rindex('"')]


def test_dashboard_shows_the_30_day_chart(client, session, me):
    UsageFactory(user=me, created_at=datetime.now(UTC))
    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="spend-chart"' in page and page.count('class="chart-bar"') == 30


def test_a_new_person_is_told_to_top_up_first_and_what_models_cost(client, auth, session):
    auth.login(UserFactory())
    page = client.get("/").get_data(as_text=True)
    assert "第一步：先充值" in page
    assert (
        "使用模型会从预付余额中扣费，你的余额现在是 ¥0.00。先用支付宝或微信支付充值（¥1.00 起），再到控制台运行模型。"
        in page
    )
    assert "Image Studio v2</span> · 每张 ¥0.10 起" in page and 'href="/recharge">先去充值</a>' in page
    client.set_cookie("lang", "en")
    page = client.get("/").get_data(as_text=True)
    assert "Start here: top up first" in page and "Chat Pro</span> · from ¥0.02 per 1k tokens" in page


def test_a_person_who_has_topped_up_sees_no_first_step(client, auth, session):
    user = UserFactory()
    PaymentFactory(user=user)  # an order started counts: the person knows the way
    auth.login(user)
    assert "first-step" not in client.get("/").get_data(as_text=True)
    auth.logout()
    auth.login(UserFactory(balance="5.00"))
    assert "first-step" not in client.get("/").get_data(as_text=True)


def test_a_new_persons_first_step_is_said_once_not_also_by_the_low_balance_banner(client, auth, session):
    auth.login(UserFactory())
    dashboard = client.get("/").get_data(as_text=True)
    assert 'data-testid="first-step"' in dashboard and 'data-testid="low-balance"' not in dashboard
    console = client.get("/console").get_data(as_text=True)
    assert 'data-testid="console-first-step"' in console and 'data-testid="low-balance"' not in console
    # Nor elsewhere: at ¥0 from the start, no charge took the amount below the threshold (SPEC 16).
    assert 'data-testid="low-balance"' not in client.get("/usage").get_data(as_text=True)


def test_the_dashboard_says_how_much_of_the_balance_is_given_and_when_it_expires(
    client, auth, session, app, monkeypatch
):
    stop_the_clock(app, monkeypatch, NOW)
    user = UserFactory()
    gift(session, user, "5.00", expires_at=END_OF_JANUARY)
    auth.login(user)
    page = client.get("/").get_data(as_text=True)
    assert kinds_line(page) == "其中赠送 ¥5.00，2027-01-31 到期"
    assert header_title(page) == "余额 · 其中赠送 ¥5.00，2027-01-31 到期"
    client.set_cookie("lang", "en")
    page = client.get("/").get_data(as_text=True)
    assert kinds_line(page) == "Of which ¥5.00 given, expiring on 2027-01-31"
    assert header_title(page) == "Balance · Of which ¥5.00 given, expiring on 2027-01-31"


def test_the_balance_line_names_only_the_kinds_there_are_and_what_expires_next(
    client, auth, session, app, monkeypatch, settings
):
    stop_the_clock(app, monkeypatch, NOW)
    user = UserFactory()
    auth.login(user)
    page = client.get("/").get_data(as_text=True)
    assert kinds_line(page) is None and header_title(page) == "余额"  # no money: nothing to break down
    settle_by_notify(session, PaymentFactory(user=user, amount=Decimal("50.00")), settings)
    assert kinds_line(client.get("/").get_data(as_text=True)) == "其中充值 ¥50.00"
    gift(session, user, "3.00")  # never expires
    gift(session, user, "5.00", expires_at=END_OF_JANUARY)
    gift(session, user, "2.00", expires_at=at("2027-03-01 00:00"))  # later: not the next
    page = client.get("/").get_data(as_text=True)
    assert kinds_line(page) == "其中充值 ¥50.00、赠送 ¥10.00；¥5.00 于 2027-01-31 到期"
    client.set_cookie("lang", "en")
    page = client.get("/").get_data(as_text=True)
    assert kinds_line(page) == "Of which ¥50.00 paid, ¥10.00 given; ¥5.00 expires on 2027-01-31"


def test_money_that_expires_at_the_same_instant_is_said_together(client, auth, session, app, monkeypatch):
    stop_the_clock(app, monkeypatch, NOW)
    user = UserFactory()
    gift(session, user, "5.00", expires_at=END_OF_JANUARY)
    gift(session, user, "1.50", expires_at=END_OF_JANUARY)
    gift(session, user, "1.00")
    auth.login(user)
    assert kinds_line(client.get("/").get_data(as_text=True)) == "其中赠送 ¥7.50；¥6.50 于 2027-01-31 到期"


def test_the_expiry_date_is_the_persons_day(client, auth, session, app, monkeypatch):
    stop_the_clock(app, monkeypatch, NOW)
    user = UserFactory(timezone="America/Los_Angeles")
    gift(session, user, "5.00", expires_at=at("2027-01-31 08:00"))  # still the 30th in Los Angeles
    auth.login(user)
    assert kinds_line(client.get("/").get_data(as_text=True)) == "其中赠送 ¥5.00，2027-01-30 到期"


def test_money_past_its_expiry_is_not_in_the_line(client, auth, session, app, monkeypatch):
    user = UserFactory()
    gift(session, user, "5.00", expires_at=at("2026-12-01 12:00"))
    gift(session, user, "1.00")
    auth.login(user)
    stop_the_clock(app, monkeypatch, at("2026-12-01 12:00"))  # the instant it expires: it counts no more
    page = client.get("/").get_data(as_text=True)
    assert kinds_line(page) == "其中赠送 ¥1.00"
    assert 'data-testid="balance"><span class="money">¥1.00</span>' in page
