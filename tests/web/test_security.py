"""Security headers and CSP on every page (ledger/web/security.py), and ownership: nobody reads or
changes another person's data through any page or API (SPEC 4.6)."""

import re
from decimal import Decimal

from sqlalchemy import select

from ledger.models import UserSession
from tests.factories import InviteFactory, PaymentFactory, UsageFactory, UserFactory
from tests.helpers import AuthActions, post_form


def test_pages_carry_security_headers_and_a_strict_csp(client, auth, session):
    auth.login(UserFactory())
    for path in ["/", "/login", "/console", "/recharge", "/usage", "/invites", "/account", "/security"]:
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_no_page_has_inline_script_or_style(client, auth, session):
    auth.login(UserFactory(balance="1.00"))
    for path in ["/", "/console", "/recharge", "/usage", "/invites", "/account", "/security", "/login"]:
        page = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), path
        assert " style=" not in page and "<style" not in page, path
        assert not re.search(r'(src|href)="(https?:)?//', page), path  # no asset from another site


def test_nobody_reads_or_changes_another_persons_data(client, auth, session, internal_headers):
    alice, bob = UserFactory(balance="20.00", email="alice@example.com"), UserFactory(email="bob@example.com")
    order = PaymentFactory(user=alice, amount=Decimal("88.00"))
    usage = UsageFactory(user=alice, model="alice-secret-model")
    InviteFactory(inviter=alice, invitee=UserFactory(email="carol@example.com"))
    alice_sessions = AuthActions(client.application.test_client())
    alice_sessions.login(alice)
    alice_session_id = session.scalars(select(UserSession.id).where(UserSession.user_id == alice.id)).one()

    auth.login(bob)
    assert client.get(f"/api/payments/{order.id}").status_code == 404
    assert client.get(f"/recharge/{order.id}").status_code == 404
    assert post_form(client, auth, f"/recharge/{order.id}/check", "/").status_code == 404
    assert post_form(client, auth, f"/security/sessions/{alice_session_id}/revoke", "/security").status_code == 404
    assert session.get(UserSession, alice_session_id).revoked_at is None
    assert "run-result" not in client.get(f"/console?result={usage.id}").get_data(as_text=True)
    for path in [
        "/",
        "/console",
        "/recharge",
        "/usage",
        "/invites",
        "/account",
        "/security",
        "/api/billing/summary",
        "/api/usage/report",
        "/api/usage/report?format=csv",
    ]:
        body = client.get(path).get_data(as_text=True)
        for secret in ["alice@example.com", "alice-secret-model", "88.00", "c***@example.com", str(order.id)]:
            assert secret not in body, (path, secret)
    assert client.get("/account/avatar").status_code == 404  # bob has none; alice's cannot be named
    assert alice_sessions.client.get("/").status_code == 200
