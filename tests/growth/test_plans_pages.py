"""/plans for people and /admin/plans for admins (SPEC 21): what each plan gives, what is left of the
allowance and until when, subscribing and cancelling with a form, the banner after a lapse, the
dashboard's line; plans made, edited and retired with a reason, confirmed first."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ledger.models import AuditLog, Plan, Subscription
from ledger.services.context import INTERNAL, SYSTEM
from ledger.services.growth import plans
from tests.factories import UserFactory
from tests.helpers import ADMIN, balance_of, charge, post_form, stop_the_clock, text_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2027, 1, 31, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
END = datetime(2027, 2, 28, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)


def make_plan(session, code="pro", price="30.00", allowance="50.00", period="month", zh="专业版", en="Pro"):
    return plans.create_plan(
        session,
        ADMIN,
        code=code,
        name_zh=zh,
        name_en=en,
        price=price,
        period=period,
        allowance=allowance,
        reason="launch",
    )


@pytest.fixture
def clock(app, monkeypatch):
    return stop_the_clock(app, monkeypatch, T0)


@pytest.fixture
def rich(client, auth, session):
    """A person signed in, with ¥100.00."""
    person = UserFactory(balance="100.00")
    auth.login(person)
    return person


def page(client, path="/plans") -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("zh", ["专业版", "¥30.00 / 月", "每月 ¥50.00 额度", "订阅 ¥30.00"]),
        ("en", ["Pro", "¥30.00 a month", "¥50.00 of allowance each month", "Subscribe for ¥30.00"]),
    ],
)
def test_the_plans_on_sale_say_what_each_gives_in_the_persons_language(client, session, rich, clock, language, said):
    client.set_cookie("lang", language)
    make_plan(session)
    make_plan(session, code="weekly", price="5.00", allowance="8.00", period="week", zh="周卡", en="Weekly")
    make_plan(session, code="old", zh="旧版", en="Old")
    plans.retire_plan(session, ADMIN, "old", reason="gone")
    text = text_of(page(client))
    for words in said:
        assert words in text, words
    assert ("周卡" if language == "zh" else "Weekly") in text
    assert ("旧版" if language == "zh" else "Old") not in text  # retired: not sold


def test_a_person_subscribes_with_the_form_and_sees_what_is_left_until_when(client, auth, session, rich, clock):
    client.set_cookie("lang", "en")
    make_plan(session)
    done = post_form(client, auth, "/plans/subscribe", "/plans", plan="pro")
    assert done.status_code == 302 and done.headers["Location"] == "/plans"
    text = text_of(page(client))
    assert "You subscribed to Pro: ¥30.00 was taken from your balance, and ¥50.00" in text
    assert "until 2027-02-28 10:00" in text
    assert balance_of(session, rich) == Decimal("120.0000")
    charge(session, rich, amount="12.50", request_id="image-1", ctx=INTERNAL.at(T0))
    text = text_of(page(client))
    assert "¥37.50 left of this period's ¥50.00, until 2027-02-28 10:00" in text
    assert "Next period: ¥30.00 a month, taken from your balance on 2027-02-28 10:00" in text
    assert "You have this plan" in text and "Subscribe for ¥30.00" not in text
    dashboard = text_of(page(client, "/"))
    assert "Plan Pro: ¥37.50 of allowance left until 2027-02-28 10:00" in dashboard


def test_cancelling_auto_renew_keeps_the_allowance_until_the_period_ends(client, auth, session, rich, clock):
    client.set_cookie("lang", "en")
    make_plan(session)
    sub = plans.subscribe(session, INTERNAL.at(T0), rich.id, "pro").subscription
    done = post_form(client, auth, f"/plans/subscriptions/{sub.id}/cancel", "/plans")
    assert done.status_code == 302
    text = text_of(page(client))
    assert "Auto-renew is off: Pro ends with its current period; its allowance stays until then." in text
    assert "Ends on 2027-02-28 10:00 . Nothing more will be charged." in text and "Auto-renew off" in text
    assert 'data-testid="cancel"' not in page(client)
    session.refresh(sub)
    assert sub.status == "cancelled"


def test_nobody_cancels_another_persons_subscription(client, auth, session, rich, clock):
    make_plan(session)
    theirs = plans.subscribe(session, INTERNAL.at(T0), UserFactory(balance="50.00").id, "pro").subscription
    assert post_form(client, auth, f"/plans/subscriptions/{theirs.id}/cancel", "/plans").status_code == 404
    assert post_form(client, auth, "/plans/subscriptions/nope/cancel", "/plans").status_code == 404
    session.refresh(theirs)
    assert theirs.status == "active"


def test_a_subscribe_the_balance_cannot_pay_says_so_with_a_top_up(client, auth, session, clock):
    client.set_cookie("lang", "en")
    person = UserFactory(balance="10.00")
    auth.login(person)
    make_plan(session)
    before = text_of(page(client))
    assert "Your available balance is ¥10.00: top up first." in before
    refused = post_form(client, auth, "/plans/subscribe", "/plans", plan="pro")
    assert refused.status_code == 302
    after = page(client)
    assert "The available balance (¥10.00) is too low for this charge." in text_of(after)
    assert 'href="/recharge"' in after
    assert session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_a_second_subscribe_from_the_page_is_refused_and_charges_nothing(client, auth, session, rich, clock):
    client.set_cookie("lang", "en")
    make_plan(session)
    plans.subscribe(session, INTERNAL.at(T0), rich.id, "pro")
    post_form(client, auth, "/plans/subscribe", "/plans", plan="pro")
    assert "You already have this plan." in text_of(page(client))
    assert balance_of(session, rich) == Decimal("120.0000")
    assert post_form(client, auth, "/plans/subscribe", "/plans", plan="none").status_code == 404


def test_after_a_lapse_for_lack_of_money_the_pages_offer_a_top_up(client, app, monkeypatch, session, auth, clock):
    client.set_cookie("lang", "en")
    person = UserFactory(balance="30.00")
    auth.login(person)
    make_plan(session)
    plans.subscribe(session, INTERNAL.at(T0), person.id, "pro")
    plans.renew_due(session, SYSTEM.at(END))
    stop_the_clock(app, monkeypatch, END + timedelta(hours=1))
    for path in ("/plans", "/"):
        html = page(client, path)
        assert "Your plan Pro ended on 2027-02-28 10:00: your balance could not pay its next period." in text_of(html)
        banner = html.split('data-testid="plan-lapsed"', 1)[1].split("</div>", 1)[0]
        assert 'href="/recharge"' in banner
    assert 'data-testid="plan-line"' not in page(client, "/")


def test_the_nav_leads_to_plans(client, rich):
    assert 'href="/plans"' in page(client, "/")
    assert client.get("/plans", follow_redirects=False).status_code == 200


def test_plans_need_a_sign_in(client, session):
    assert client.get("/plans").status_code == 302


# --- /admin/plans ---------------------------------------------------------------------------------


def test_the_plans_admin_pages_do_not_exist_for_anyone_but_admins(client, auth, session):
    make_plan(session)
    auth.login(UserFactory())
    for path in ("/admin/plans", "/admin/plans/pro"):
        assert client.get(path).status_code == 404
    for path in ("/admin/plans", "/admin/plans/pro/edit", "/admin/plans/pro/retire"):
        assert post_form(client, auth, path, "/", reason="x", confirmed="yes").status_code == 404
    assert session.scalar(select(Plan.active)) is True


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_plans_admin_pages_list_and_show_each_plan(client, admin_user, session, language):
    client.set_cookie("lang", language)
    make_plan(session)
    make_plan(session, code="old", zh="旧版", en="Old")
    plans.retire_plan(session, ADMIN, "old", reason="gone")
    plans.subscribe(session, INTERNAL, UserFactory(balance="100.00").id, "pro")
    listed = page(client, "/admin/plans")
    assert 'href="/admin/plans/pro"' in listed and "专业版 · Pro" in listed
    assert ("已停售" if language == "zh" else "Retired") in listed
    assert 'href="/admin/plans"' in page(client, "/admin") and 'data-testid="holders">1<' in page(
        client, "/admin/plans/pro"
    )
    assert client.get("/admin/plans/nope").status_code == 404


def test_a_plan_is_confirmed_then_made_and_audited(client, auth, admin_user, session):
    client.set_cookie("lang", "en")
    fields = {
        "code": "pro-monthly",
        "name_zh": "专业版",
        "name_en": "Pro",
        "period": "month",
        "price": "30",
        "allowance": "50.00",
        "reason": "launch",
    }
    shown = post_form(client, auth, "/admin/plans", "/admin/plans", **fields)
    assert shown.status_code == 200 and "¥30.00 a month for ¥50.00 of allowance" in text_of(
        shown.get_data(as_text=True)
    )
    assert session.scalar(select(func.count()).select_from(Plan)) == 0
    done = post_form(client, auth, "/admin/plans", "/admin/plans", **fields, confirmed="yes")
    assert done.status_code == 302 and done.headers["Location"] == "/admin/plans/pro-monthly"
    plan = session.scalars(select(Plan)).one()
    assert (plan.price, plan.allowance, plan.period, plan.active) == (
        Decimal("30.0000"),
        Decimal("50.0000"),
        "month",
        True,
    )
    row = session.scalars(select(AuditLog).where(AuditLog.action == "plans.created")).one()
    assert (row.actor, row.details["admin_id"], row.details["reason"]) == ("admin", str(admin_user.id), "launch")


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"code": "Pro Monthly"}, "lowercase letters"),
        ({"price": "0"}, "greater than zero"),
        ({"period": "year"}, "Choose week or month."),
        ({"reason": ""}, "Say why"),
    ],
)
def test_a_bad_plan_is_refused_on_the_confirmation_page(client, auth, admin_user, session, fields, said):
    client.set_cookie("lang", "en")
    good = {"code": "pro", "name_zh": "专业版", "name_en": "Pro", "period": "month", "price": "30", "allowance": "50"}
    refused = post_form(
        client, auth, "/admin/plans", "/admin/plans", **{**good, "reason": "r", **fields}, confirmed="yes"
    )
    assert refused.status_code == 422 and said in refused.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Plan)) == 0


def test_an_edit_is_confirmed_with_each_change_then_done(client, auth, admin_user, session):
    client.set_cookie("lang", "en")
    make_plan(session)
    fields = {"name_zh": "专业版", "name_en": "Pro plus", "price": "40.00", "allowance": "50.00", "reason": "prices"}
    shown = text_of(
        post_form(client, auth, "/admin/plans/pro/edit", "/admin/plans/pro", **fields).get_data(as_text=True)
    )
    assert "Name in English: Pro → Pro plus" in shown and "Price a period: ¥30.00 → ¥40.00" in shown
    assert "Allowance" not in shown.split("Confirm this action", 1)[1].split("Reason", 1)[0]
    done = post_form(client, auth, "/admin/plans/pro/edit", "/admin/plans/pro", **fields, confirmed="yes")
    assert done.status_code == 302
    plan = session.scalars(select(Plan)).one()
    assert (plan.name_en, plan.price) == ("Pro plus", Decimal("40.00"))
    row = session.scalars(select(AuditLog).where(AuditLog.action == "plans.edited")).one()
    assert row.details["changes"] == {"name_en": ["Pro", "Pro plus"], "price": ["30.00", "40.00"]}


def test_retiring_is_confirmed_with_the_subscriptions_it_ends(client, auth, admin_user, session):
    client.set_cookie("lang", "en")
    make_plan(session)
    plans.subscribe(session, INTERNAL, UserFactory(balance="100.00").id, "pro")
    shown = post_form(client, auth, "/admin/plans/pro/retire", "/admin/plans/pro", reason="replaced")
    assert "1 subscription runs to the end of its period, then ends." in text_of(shown.get_data(as_text=True))
    post_form(client, auth, "/admin/plans/pro/retire", "/admin/plans/pro", reason="replaced", confirmed="yes")
    assert session.scalar(select(Plan.active)) is False
    assert 'data-testid="plan-retired"' in page(client, "/admin/plans/pro")
    again = post_form(client, auth, "/admin/plans/pro/retire", "/admin/plans/pro", reason="again", confirmed="yes")
    assert again.status_code == 422
