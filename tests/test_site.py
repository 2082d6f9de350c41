"""/: the dashboard."""

from datetime import UTC, datetime

from tests.factories import PaymentFactory, UsageFactory, UserFactory


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
    assert 'data-testid="low-balance"' in client.get("/usage").get_data(as_text=True)  # elsewhere it still warns
