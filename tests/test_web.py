"""Account and security pages, sessions, rate limits, headers, uploads, and ownership everywhere (SPEC 4.6)."""

import io
import re
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import func, select

from ledger.models import AuditLog, User, UserSession
from ledger.services.audit import INTERNAL
from ledger.services.billing import charge_usage
from tests.conftest import AuthActions
from tests.factories import PASSWORD, InviteFactory, PaymentFactory, UsageFactory, UserFactory


def image_bytes(fmt="PNG", size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def noise_png(min_bytes: int) -> bytes:
    """A valid PNG of random pixels, at least `min_bytes` long (noise does not compress)."""
    import os

    side = 1024
    while True:
        buffer = io.BytesIO()
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG", compress_level=0)
        if len(buffer.getvalue()) >= min_bytes:
            data = buffer.getvalue()
            assert len(data) <= 4 * 1024 * 1024 - 1024  # under MAX_CONTENT_LENGTH: the avatar check must refuse it
            return data
        side += 64


def broken_crc_png() -> bytes:
    data = bytearray(image_bytes("PNG"))
    data[data.index(b"IDAT") + 6] ^= 0xFF  # flip bits inside the image data: its CRC no longer matches
    return bytes(data)


def post_form(client, auth, path, page, **data):
    return client.post(path, data={"csrf_token": auth.csrf_token(page), **data})


# --- /account -----------------------------------------------------------------------------------


def test_profile_edit_saves_and_audits(client, auth, session):
    user = UserFactory()
    auth.login(user)
    response = post_form(
        client, auth, "/account", "/account", username="Alice_01", full_name="爱丽丝", website="https://alice.example"
    )
    assert response.status_code == 302
    session.refresh(user)
    assert (user.username, user.full_name, user.website) == ("Alice_01", "爱丽丝", "https://alice.example")
    assert session.scalars(select(AuditLog.action).where(AuditLog.action == "profile.updated")).one()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "x" * 31),
        ("username", "bad name!"),
        ("website", "javascript:alert(1)"),
        ("website", "ftp://x.example"),
        ("website", "https://" + "x" * 200),
        ("full_name", "x" * 101),
    ],
)
def test_profile_refuses_bad_fields_and_writes_nothing(client, auth, session, field, value):
    user = UserFactory()
    auth.login(user)
    data = {"username": "", "full_name": "", "website": "", field: value}
    assert post_form(client, auth, "/account", "/account", **data).status_code == 422
    session.refresh(user)
    assert (user.username, user.full_name, user.website) == (None, None, None)


def test_username_is_unique_whatever_its_case(client, auth, session):
    UserFactory(username="Alice")
    user = UserFactory()
    auth.login(user)
    response = post_form(client, auth, "/account", "/account", username="alice", full_name="", website="")
    assert response.status_code == 422
    session.refresh(user)
    assert user.username is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_avatar_upload_is_reencoded_and_served_with_safe_headers(client, auth, session, fmt):
    user = UserFactory()
    auth.login(user)
    upload = (io.BytesIO(image_bytes(fmt)), f"me.{fmt.lower()}")
    response = client.post(
        "/account/avatar",
        data={"avatar": upload, "csrf_token": auth.csrf_token("/account")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    session.refresh(user)
    served = client.get("/account/avatar")
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert Image.open(io.BytesIO(served.data)).size == (256, 256)


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b"<?php echo 1; ?>", "shell.png"),
        (b"GIF89a" + b"\x00" * 100, "anim.gif"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg"),
        (image_bytes("PNG")[:40], "truncated.png"),
        (image_bytes("BMP"), "bitmap.png"),
        (noise_png(2 * 1024 * 1024 + 1), "huge.png"),  # a real image, one byte too big
        (image_bytes("PNG", size=(5000, 10)), "wide.png"),  # more pixels on a side than an avatar may cost
        (broken_crc_png(), "corrupt.png"),
    ],
)
def test_avatar_upload_refuses_non_images_and_oversized_files(client, auth, session, payload, name):
    user = UserFactory()
    auth.login(user)
    response = client.post(
        "/account/avatar",
        data={"avatar": (io.BytesIO(payload), name), "csrf_token": auth.csrf_token("/account")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    session.refresh(user)
    assert user.avatar is None


def test_account_lists_ledger_entries_with_running_balance(client, auth, session):
    user = UserFactory(balance="10.00")
    charge_usage(session, user_id=user.id, amount="2.50", model="m", request_id="r1", origin=INTERNAL)
    auth.login(user)
    page = client.get("/account").get_data(as_text=True)
    ledger = page[page.index('data-testid="ledger"') :]
    assert ledger.index("-¥2.50") < ledger.index("+¥10.00")  # newest first
    assert "¥7.50" in ledger


# --- /security ----------------------------------------------------------------------------------


def test_security_page_lists_sessions_and_marks_this_device(app, client, auth, session):
    user = UserFactory()
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) MicroMessenger/8.0"
    AuthActions(phone).login(user)
    client.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 Safari/537.36"
    auth.login(user)
    body = client.get("/security").get_data(as_text=True)
    sessions = body[body.index('data-testid="sessions"') : body.index('data-testid="events"')]
    assert sessions.count("list-group-item") == 2
    this_device = sessions.index('data-testid="this-device"')
    assert sessions.rindex("Chrome · Windows", 0, this_device) >= 0  # the badge sits on this browser's row
    assert "WeChat · iPhone" in sessions


def test_sign_out_another_session_takes_effect_on_its_next_request(app, client, auth, session):
    user = UserFactory()
    other = AuthActions(app.test_client())
    other.login(user)
    assert other.client.get("/").status_code == 200
    auth.login(user)
    mine = client.get("/security").get_data(as_text=True)
    other_id = re.findall(r"/security/sessions/([0-9a-f-]{36})/revoke", mine)[0]
    assert post_form(client, auth, f"/security/sessions/{other_id}/revoke", "/security").status_code == 302
    assert session.get(UserSession, uuid.UUID(other_id)).revoked_at is not None
    assert other.client.get("/").status_code == 302  # sent to the login page
    assert client.get("/").status_code == 200


def test_sign_out_all_other_sessions(app, client, auth, session):
    user = UserFactory()
    others = [AuthActions(app.test_client()) for _ in range(3)]
    for other in others:
        other.login(user)
    auth.login(user)
    post_form(client, auth, "/security/sessions/revoke-others", "/security")
    assert [o.client.get("/api/billing/summary").status_code for o in others] == [401, 401, 401]
    assert client.get("/api/billing/summary").status_code == 200


def test_password_change_needs_the_current_one_and_signs_out_others(app, client, auth, session):
    user = UserFactory()
    other = AuthActions(app.test_client())
    other.login(user)
    auth.login(user)
    wrong = post_form(
        client,
        auth,
        "/security/password",
        "/security",
        current="nope-nope",
        new="new-password-1",
        confirm="new-password-1",
    )
    assert wrong.status_code == 422
    assert other.client.get("/").status_code == 200
    done = post_form(
        client,
        auth,
        "/security/password",
        "/security",
        current=PASSWORD,
        new="new-password-1",
        confirm="new-password-1",
    )
    assert done.status_code == 302
    assert other.client.get("/").status_code == 302
    assert client.get("/").status_code == 200
    assert AuthActions(app.test_client()).login(user, password="new-password-1").status_code == 302
    assert AuthActions(app.test_client()).login(user, password=PASSWORD).status_code == 422
    actions = set(session.scalars(select(AuditLog.action).where(AuditLog.user_id == user.id)))
    assert {"auth.password_change_failed", "auth.password_changed"} <= actions


def test_security_page_shows_recent_audit_events(client, auth, session):
    user = UserFactory()
    auth.login(user, password="wrong-password")
    auth.login(user)
    body = client.get("/security").get_data(as_text=True)
    events = body[body.index('data-testid="events"') :]
    assert "登录失败" in events or "Failed sign-in" in events


# --- hardening ----------------------------------------------------------------------------------


@pytest.fixture
def limited_app(app, settings, monkeypatch):
    """The app with tight limits (read per request) and empty counters."""
    from ledger.extensions import limiter

    tight = replace(settings, RATELIMIT_LOGIN="3/minute", RATELIMIT_REGISTER="2/hour")
    monkeypatch.setitem(app.config, "LEDGER", tight)
    limiter.reset()
    yield app
    limiter.reset()


def test_login_is_rate_limited_per_ip(limited_app, session):
    client = limited_app.test_client()
    actions = AuthActions(client)
    statuses = [actions.login(f"nobody{i}@example.com", password="x" * 10).status_code for i in range(4)]
    assert statuses == [422, 422, 422, 429]
    page = actions.login("someone@example.com", password="x" * 10)
    assert page.status_code == 429 and "尝试次数过多" in page.get_data(as_text=True)
    assert client.get("/login").status_code == 200  # only attempts are limited, not the page


def test_login_is_rate_limited_per_account_across_ips(limited_app, session):
    user = UserFactory()
    statuses = []
    for i in range(4):
        client = limited_app.test_client()
        token = AuthActions(client).csrf_token()
        statuses.append(
            client.post(
                "/login",
                data={"email": user.email, "password": "wrong-pass", "csrf_token": token},
                environ_base={"REMOTE_ADDR": f"10.0.0.{i}"},
            ).status_code
        )
    assert statuses == [422, 422, 422, 429]


def test_register_is_rate_limited_per_ip(limited_app, session):
    statuses = []
    for i in range(3):
        client = limited_app.test_client()  # a new browser each time, from the same address
        token = AuthActions(client).csrf_token("/register")
        data = {"email": f"n{i}@example.com", "password": "long-password", "csrf_token": token}
        statuses.append(client.post("/register", data=data).status_code)
    assert statuses == [302, 302, 429]


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


def test_session_cookie_is_httponly_and_lax(client, auth, session):
    response = auth.login(UserFactory())
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure(settings):
    config = replace(settings, LEDGER_ENV="production").flask_config()
    assert config["SESSION_COOKIE_SECURE"] is True


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


# --- ownership: two people, every page and API ----------------------------------------------------


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


def test_user_count_unchanged_by_refused_registrations(client, auth, session):
    before = session.scalar(select(func.count()).select_from(User))
    client.post(
        "/register", data={"email": "x@example.com", "password": "short", "csrf_token": auth.csrf_token("/register")}
    )
    assert session.scalar(select(func.count()).select_from(User)) == before


def test_time_zone_choice_moves_day_boundaries(client, auth, session):
    from datetime import UTC, datetime

    user = UserFactory()
    auth.login(user)
    data = {"username": "", "full_name": "", "website": "", "timezone": "America/Los_Angeles"}
    assert post_form(client, auth, "/account", "/account", **data).status_code == 302
    session.refresh(user)
    assert user.timezone == "America/Los_Angeles"
    # 2026-03-02 03:00 UTC is the 1st in Los Angeles (and the 2nd in Shanghai).
    UsageFactory(user=user, created_at=datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    body = client.get("/api/usage/report?from=2026-03-01&to=2026-03-01").get_json()
    assert body["totals"]["count"] == 1
    assert body["items"][0]["created_at"] == "2026-03-01T19:00:00-08:00"
    bad = post_form(client, auth, "/account", "/account", **{**data, "timezone": "Mars/Olympus"})
    assert bad.status_code == 422


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
