"""/register, /login, /logout: sign-up, sign-in, login sessions, CSRF and rate limits (SPEC 9, issue 2.4)."""

import re
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update

from ledger.models import AuditLog, BillingAccount, InviteRelation, User, UserSession
from tests.factories import PASSWORD, UserFactory
from tests.helpers import AuthActions


def register(client, auth, email="new@example.com", password="s3cret-password"):
    return client.post(
        "/register", data={"email": email, "password": password, "csrf_token": auth.csrf_token("/register")}
    )


# --- register -------------------------------------------------------------------------------------


def test_register_creates_user_account_invite_code_and_signs_in(client, auth, session):
    response = register(client, auth, email="  New.Person@Example.COM ")
    assert response.status_code == 302 and response.headers["Location"] == "/"

    user = session.scalars(select(User).where(User.email == "new.person@example.com")).one()
    assert user.password_hash.startswith("pbkdf2:sha256:1$")  # the suite's PASSWORD_HASH (scrypt: test_sign_in)
    assert "s3cret-password" not in user.password_hash
    assert re.fullmatch(r"[2-9a-hjkmnp-z]{8}", user.invite_code)
    account = session.get(BillingAccount, user.id)
    assert (account.balance, account.currency) == (0, "CNY")
    assert session.scalar(select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)) == 1
    actions = session.scalars(select(AuditLog.action).where(AuditLog.user_id == user.id).order_by(AuditLog.id)).all()
    assert actions == ["user.registered", "auth.login"]
    assert client.get("/").status_code == 200


def test_register_refuses_an_email_taken_in_any_case(client, auth, session):
    UserFactory(email="taken@example.com")
    response = register(client, auth, email="TAKEN@example.com")
    assert response.status_code == 422
    assert "该邮箱已注册" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize(
    ("email", "password"),
    [("not-an-email", "long-enough-pw"), ("a@example.com", "short"), ("", "long-enough-pw"), ("a@example.com", "")],
)
def test_register_refuses_bad_input_and_writes_nothing(client, auth, session, email, password):
    response = register(client, auth, email=email, password=password)
    assert response.status_code == 422
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_a_refused_registration_creates_no_user(client, auth, session):
    before = session.scalar(select(func.count()).select_from(User))
    client.post(
        "/register", data={"email": "x@example.com", "password": "short", "csrf_token": auth.csrf_token("/register")}
    )
    assert session.scalar(select(func.count()).select_from(User)) == before


def test_register_with_invite_link_binds_in_the_same_transaction(client, auth, session):
    inviter = UserFactory()
    page = client.get(f"/register?invite={inviter.invite_code}").get_data(as_text=True)
    assert f'value="{inviter.invite_code}"' in page
    response = client.post(
        "/register",
        data={
            "email": "friend@example.com",
            "password": "friend-password",
            "invite": inviter.invite_code,
            "csrf_token": auth.csrf_token("/register"),
        },
    )
    assert response.status_code == 302
    friend = session.scalars(select(User).where(User.email == "friend@example.com")).one()
    assert session.scalars(select(InviteRelation.inviter_id).where(InviteRelation.invitee_id == friend.id)).one() == (
        inviter.id
    )


def test_register_with_an_unknown_invite_code_creates_nothing(client, auth, session):
    response = client.post(
        "/register",
        data={
            "email": "friend@example.com",
            "password": "friend-password",
            "invite": "nobody42",
            "csrf_token": auth.csrf_token("/register"),
        },
    )
    assert response.status_code == 422
    assert "邀请码" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("invite", ["ab\x00cd", "\x00", "code\r\n"])
def test_register_with_an_invite_code_no_one_can_have_creates_nothing(client, auth, session, invite):
    data = {"email": "friend@example.com", "password": "friend-password", "invite": invite}
    response = client.post("/register", data={**data, "csrf_token": auth.csrf_token("/register")})
    assert response.status_code == 422
    assert "没有人使用这个邀请码" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(User)) == 0


# --- sign in and out ------------------------------------------------------------------------------


def test_login_with_right_password_starts_a_session(client, auth, session):
    user = UserFactory()
    response = auth.login(user.email.upper())
    assert response.status_code == 302
    login = session.scalars(select(UserSession).where(UserSession.user_id == user.id)).one()
    assert login.revoked_at is None and login.user_agent
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("email", ["known", "unknown@example.com"])
def test_login_failure_says_the_same_whether_or_not_the_email_exists(client, auth, session, email):
    user = UserFactory()
    response = auth.login(user.email if email == "known" else email, password="wrong-password")
    assert response.status_code == 422
    assert "邮箱或密码错误。" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(UserSession)) == 0
    failed = session.scalars(select(AuditLog).where(AuditLog.action == "auth.login_failed")).one()
    assert failed.user_id == (user.id if email == "known" else None)


@pytest.mark.parametrize("email", ["a\x00@example.com", "x" * 300 + "@example.com"])
def test_login_with_unstorable_email_is_a_plain_failure(client, auth, session, email):
    response = client.post("/login", data={"email": email, "password": "whatever-pw", "csrf_token": auth.csrf_token()})
    assert response.status_code == 422
    assert session.scalar(select(func.count()).select_from(UserSession)) == 0


@pytest.mark.parametrize("password", ["pass\x00word", "\x00"])
def test_login_with_an_unstorable_password_is_a_failed_sign_in_that_is_audited(client, auth, session, password):
    user = UserFactory()
    response = client.post("/login", data={"email": user.email, "password": password, "csrf_token": auth.csrf_token()})
    assert response.status_code == 422
    assert "邮箱或密码错误" in response.get_data(as_text=True)
    failed = session.scalars(select(AuditLog).where(AuditLog.action == "auth.login_failed")).one()
    assert failed.user_id == user.id
    assert session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_logout_revokes_the_session_row(client, auth, session):
    user = UserFactory()
    auth.login(user)
    assert auth.logout().status_code == 302
    login = session.scalars(select(UserSession).where(UserSession.user_id == user.id)).one()
    assert login.revoked_at is not None
    assert client.get("/").status_code == 302


def test_revoked_session_is_signed_out_on_its_next_request(client, auth, session):
    user = UserFactory()
    auth.login(user)
    assert client.get("/api/billing/summary").status_code == 200
    session.execute(update(UserSession).values(revoked_at=func.now()))
    assert client.get("/api/billing/summary").status_code == 401
    assert client.get("/").headers["Location"].startswith("/login")


def test_each_login_gets_its_own_session_row(app, session):
    user = UserFactory()
    for _ in range(2):
        AuthActions(app.test_client()).login(user)
    assert session.scalar(select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)) == 2


def test_login_form_without_csrf_token_is_refused(client, session):
    user = UserFactory()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_session_json_post_without_csrf_header_is_refused(client, auth, session):
    auth.login(UserFactory())
    response = client.post("/logout")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"]
)
def test_login_next_never_leaves_the_site(client, auth, session, target):
    user = UserFactory()
    response = client.post(
        f"/login?next={target}", data={"email": user.email, "password": PASSWORD, "csrf_token": auth.csrf_token()}
    )
    assert response.headers["Location"] == "/"


def test_login_next_follows_a_local_path(client, auth, session):
    user = UserFactory()
    response = client.post(
        "/login?next=/console", data={"email": user.email, "password": PASSWORD, "csrf_token": auth.csrf_token()}
    )
    assert response.headers["Location"] == "/console"


def test_pages_need_sign_in(client, session):
    for path in ["/", "/console"]:
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_session_cookie_is_httponly_and_lax(client, auth, session):
    response = auth.login(UserFactory())
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- rate limits ----------------------------------------------------------------------------------


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


def test_a_failed_sign_in_from_a_browser_with_a_nul_in_its_user_agent_is_still_audited(client, auth, session):
    user = UserFactory()
    data = {"email": user.email, "password": "wrong-password", "csrf_token": auth.csrf_token()}
    response = client.post("/login", data=data, headers={"User-Agent": "Evil\x00Agent/1.0"})
    assert response.status_code == 422
    failed = session.scalars(select(AuditLog).where(AuditLog.action == "auth.login_failed")).one()
    assert failed.user_agent == "Evil\ufffdAgent/1.0"


def test_a_forged_x_forwarded_for_changes_nothing_without_a_proxy_in_front(limited_app, session):
    """PROXY_COUNT=0 (the default): a new X-Forwarded-For per sign-up does not escape the limit,
    and the audit row records the address the request came from."""
    statuses = []
    for i in range(3):
        client = limited_app.test_client()
        token = AuthActions(client).csrf_token("/register")
        data = {"email": f"xff{i}@example.com", "password": "long-password", "csrf_token": token}
        statuses.append(client.post("/register", data=data, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code)
    assert statuses == [302, 302, 429]
    ips = session.scalars(select(AuditLog.ip).where(AuditLog.action == "user.registered")).all()
    assert [str(ip) for ip in ips] == ["127.0.0.1", "127.0.0.1"]


def test_behind_one_proxy_the_address_it_forwards_is_the_clients(settings, database, session):
    from ledger import create_app

    proxied = create_app(replace(settings, PROXY_COUNT=1), database)
    client = proxied.test_client()
    user = UserFactory()
    data = {"email": user.email, "password": "wrong-pass", "csrf_token": AuthActions(client).csrf_token()}
    forwarded = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}  # a client's forgery, then what our proxy saw
    assert (
        client.post("/login", data=data, headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 422
    )
    failed = session.scalars(select(AuditLog).where(AuditLog.action == "auth.login_failed")).one()
    assert str(failed.ip) == "203.0.113.9"
