"""The admin's order page (blueprints.backoffice.orders): what can be refunded now, and why less
than was paid (SPEC 15, 20)."""

import re
from decimal import Decimal

from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import charge, settle_by_notify


def shown(response, testid: str) -> str:
    """The text of the page's element `testid` (its first), as its reader sees it."""
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</(p|span)>', response.get_data(as_text=True), re.S)
    assert found, testid
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_the_order_page_says_what_is_refundable_and_why_less_than_was_paid(client, admin_user, session, settings):
    person = UserFactory()
    order = PaymentFactory(user=person, amount=Decimal("100.00"))
    settle_by_notify(session, order, settings)
    page = f"/admin/orders/{order.id}"
    assert shown(client.get(page), "refundable") == "现在可退 ¥100.00。"
    adjust_balance(session, user_id=person.id, amount=Decimal("50.00"), memo="a code", ctx=SYSTEM)
    charge(session, person, amount="60.00")  # the gift's 50.00 first, then 10.00 of the order's money
    assert shown(client.get(page), "refundable") == (
        "现在可退 ¥90.00。 这笔订单充入的钱已用掉 ¥10.00；赠送的钱不会以现金退回。"
    )
    client.set_cookie("lang", "en")
    assert shown(client.get(page), "refundable-why") == (
        "¥10.00 of the money this order paid for has been spent; given money is never refunded as cash."
    )
