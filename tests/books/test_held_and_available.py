"""One `held` and one `available` everywhere (SPEC 4.7): set aside by active holds and by pending
refunds, a hold past its expiry counting no more from that instant; the summary, every page and a
charge's refusal say the same figures."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.services.books.holds import place_hold
from ledger.services.context import INTERNAL
from ledger.services.payments.refunds import refund_order
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, AuthActions, balance_of, post_form, settle_by_notify


@pytest.fixture
def set_aside(session, settings, xorpay):
    """¥50.00 paid in; a refund of ¥20.00 whose outcome XorPay left unknown (pending, held); a live
    hold of ¥5.00; and a hold of ¥7.00 past its expiry that nothing has written yet."""
    person = UserFactory()
    order = PaymentFactory(user=person)
    settle_by_notify(session, order, settings)
    xorpay.refund_times_out()
    assert refund_order(session, xorpay.client, ADMIN, order.id, "20.00", reason="asked").status == "pending"
    common = {"user_id": order.user_id, "model": "motion-video-1", "ctx": INTERNAL}
    place_hold(session, amount="5.00", request_id="live", **common)
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    place_hold(
        session, amount="7.00", request_id="past-due", ttl_seconds=3600, **{**common, "ctx": INTERNAL.at(long_ago)}
    )
    return person


def test_the_summary_counts_pending_refunds_and_not_past_due_holds(client, auth, set_aside):
    auth.login(set_aside)
    body = client.get("/api/billing/summary").get_json()
    assert (body["balance"], body["held"], body["available"]) == ("50.00", "25.00", "25.00")


def test_a_refused_charge_names_the_available_amount_the_summary_shows(client, internal_headers, set_aside):
    body = {"user_id": str(set_aside.id), "amount": "25.01", "model": "m", "request_id": "too-much"}
    refused = client.post("/api/billing/deduct", json=body, headers=internal_headers)
    assert refused.status_code == 402
    assert (refused.get_json()["error"]["balance"], refused.get_json()["error"]["available"]) == ("50.00", "25.00")


def test_every_page_shows_the_same_held_and_available(client, auth, set_aside):
    client.set_cookie("lang", "en")
    auth.login(set_aside)
    dashboard = client.get("/").get_data(as_text=True)
    assert 'Available <span class="money">¥25.00</span> · On hold <span class="money">¥25.00</span>' in dashboard
    for path in ("/", "/usage", "/account"):
        page = client.get(path).get_data(as_text=True)
        assert 'data-testid="held-total"><span class="money">¥25.00</span>' in page, path
        assert 'data-testid="held-refunding">' in page and "Refund under way" in page, path
        assert page.count("Motion Video 1 <span") == 1, path  # the live hold only
        assert "until" in page and "A refund being paid back to you is set aside" in page, path
    console = client.get("/console").get_data(as_text=True)
    assert "¥25.00" in console


def test_the_admins_person_page_shows_the_same_held_and_available(app, session, set_aside):
    admin = UserFactory(is_admin=True)
    staff = app.test_client()
    staff.set_cookie("lang", "en")
    AuthActions(staff).login(admin)
    page = staff.get(f"/admin/users/{set_aside.id}").get_data(as_text=True)
    assert 'Held <span class="money">¥25.00</span> · Available <span class="money">¥25.00</span>' in page


def test_an_admins_refund_counts_a_hold_past_its_expiry_as_available(app, session, settings, xorpay):
    # ¥50.00 paid in, ¥40.00 held by a hold that expired an hour ago (the job has not written it):
    # ¥50.00 is available, as the person's pages say, so a refund of ¥30.00 is previewed and made.
    person = UserFactory()
    order = PaymentFactory(user=person)
    settle_by_notify(session, order, settings)
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    place_hold(
        session,
        user_id=person.id,
        amount="40.00",
        model="motion-video-1",
        request_id="past-due",
        ttl_seconds=3600,
        ctx=INTERNAL.at(long_ago),
    )
    staff = app.test_client()
    staff.set_cookie("lang", "en")
    auth = AuthActions(staff)
    auth.login(UserFactory(is_admin=True))
    page = f"/admin/orders/{order.id}"
    shown = post_form(staff, auth, f"{page}/refund", page, amount="30.00", reason="duplicate")
    assert (shown.status_code, "refundable ¥50.00" in shown.get_data(as_text=True)) == (200, True)
    xorpay.refund_answers("ok")
    done = post_form(staff, auth, f"{page}/refund", page, amount="30.00", reason="duplicate", confirmed="yes")
    assert done.status_code == 302
    assert balance_of(session, person.id) == Decimal("20.00")
