"""What every page and API shares (ledger/web.py): security headers and CSP, error answers, form parsing,
and ownership: nobody reads or changes another person's data (SPEC 4.6)."""

import io
import re
from decimal import Decimal

import pytest
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


def test_errors_do_not_leak_tracebacks(client, auth, session, monkeypatch):
    import ledger.blueprints.api_billing as api_billing
    import ledger.blueprints.site as site

    def boom(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api_billing, "account_summary", boom)
    monkeypatch.setattr(site, "account_summary", boom)
    auth.login(UserFactory())
    api = client.get("/api/billing/summary")
    assert api.status_code == 500 and api.get_json()["error"]["code"] == "internal_error"
    page = client.get("/")
    assert page.status_code == 500
    for response in (api, page):
        assert "secret internals" not in response.get_data(as_text=True)
        assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_api_route_is_a_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "field"),
    [("/login", "email"), ("/register", "email"), ("/account", "website"), ("/security/password", "current")],
)
def test_a_file_sent_in_a_text_field_is_a_plain_refusal(client, auth, session, path, field):
    if path in ("/login", "/register"):
        token = auth.csrf_token(path)
    else:
        auth.login(UserFactory())
        token = auth.csrf_token("/security")
    data = {"csrf_token": token, field: (io.BytesIO(b"x"), "x.txt")}
    response = client.post(path, data=data, content_type="multipart/form-data")
    # The file is not taken as text: the field is empty (a profile may leave the website empty).
    assert response.status_code == (302 if path == "/account" else 422)


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
