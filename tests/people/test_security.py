"""/security: login sessions (this device, sign out others), password change and recent events."""

import re
import uuid

from sqlalchemy import select

from ledger.models import AuditLog, UserSession
from tests.factories import PASSWORD, UserFactory
from tests.helpers import AuthActions, post_form


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


def test_sign_out_all_other_sessions_ends_them_but_not_this_one(app, client, auth, session):
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


def test_signing_out_elsewhere_when_signed_in_nowhere_else_says_so(client, auth, session):
    auth.login(UserFactory())
    page = post_form(client, auth, "/security/sessions/revoke-others", "/security")
    assert "没有在其他地方登录，无需退出。" in client.get(page.headers["Location"]).get_data(as_text=True)
