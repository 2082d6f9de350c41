"""Spending limits on the pages (SPEC 22): a person sets and clears their own on /account and sees how
much of each is used; an admin sets theirs on the person's page with a reason, confirmed."""

import re
from decimal import Decimal

from sqlalchemy import select

from ledger.models import AuditLog, LimitSetter, SpendingLimit
from ledger.services.books.charges import charge_usage
from ledger.services.context import INTERNAL
from tests.factories import UserFactory
from tests.helpers import post_form


def limits_of(session, user) -> dict[tuple[str, str], Decimal]:
    rows = session.scalars(select(SpendingLimit).where(SpendingLimit.user_id == user.id)).all()
    return {(r.period.value, r.set_by.value): r.amount for r in rows}


def test_a_person_sets_their_limits_sees_their_use_and_clears_one(client, auth, session):
    me = UserFactory(balance="50.00")
    auth.login(me)
    saved = post_form(client, auth, "/account/limits", "/account", day="20", month="300.50")
    assert (saved.status_code, saved.headers["Location"]) == (302, "/account#limits")
    assert limits_of(session, me) == {("day", "person"): Decimal("20.00"), ("month", "person"): Decimal("300.50")}
    charge_usage(session, user_id=me.id, amount="5.00", model="m", request_id="r", ctx=INTERNAL)
    page = client.get("/account").get_data(as_text=True)
    shown = page[page.index('data-testid="limits"') :]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", shown))
    assert "¥5.00 / ¥20.00" in text and "¥5.00 / ¥300.50" in text
    assert '<meter class="limit-meter w-100 my-1" min="0" max="20.00" value="5.00"' in shown  # 5 of 20
    post_form(client, auth, "/account/limits", "/account", day="", month="300.50")
    assert limits_of(session, me) == {("month", "person"): Decimal("300.50")}


def test_a_bad_limit_names_its_field_and_changes_nothing(client, auth, session):
    me = UserFactory()
    auth.login(me)
    post_form(client, auth, "/account/limits", "/account", day="10", month="")
    refused = post_form(client, auth, "/account/limits", "/account", day="5", month="1.234")
    assert refused.status_code == 422
    assert "最多 2 位小数" in refused.get_data(as_text=True)
    assert limits_of(session, me) == {("day", "person"): Decimal("10.00")}  # the day's 5 was not written either


def test_an_admin_sets_a_limit_with_a_reason_after_confirming(client, auth, admin_user, session):
    person = UserFactory()
    page = f"/admin/users/{person.id}"
    asked = post_form(client, auth, f"{page}/limits", page, day="8.00", month="", reason="chargeback risk")
    assert asked.status_code == 200 and "8.00" in asked.get_data(as_text=True)  # the confirmation
    assert limits_of(session, person) == {}
    done = post_form(
        client, auth, f"{page}/limits", page, day="8.00", month="", reason="chargeback risk", confirmed="yes"
    )
    assert done.status_code == 302
    assert limits_of(session, person) == {("day", "admin"): Decimal("8.00")}
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "limit.set")).one()
    assert (audit.actor, audit.details["reason"], audit.details["admin_id"]) == (
        "admin",
        "chargeback risk",
        str(admin_user.id),
    )
    assert 'data-testid="limits"' in client.get(page).get_data(as_text=True)


def test_an_admins_limit_needs_a_reason(client, auth, admin_user, session):
    person = UserFactory()
    page = f"/admin/users/{person.id}"
    refused = post_form(client, auth, f"{page}/limits", page, day="8.00", month="", reason="", confirmed="yes")
    assert refused.status_code == 422
    assert limits_of(session, person) == {}
    assert LimitSetter.ADMIN.value == "admin"
