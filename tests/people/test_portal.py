"""Portal links (SPEC 25): the SaaS's backend asks for a link, its person's browser follows it once
and lands signed in on the page asked for, with a link back to the SaaS; a used, expired or forged
link leads to the sign-in page with a message."""

import dataclasses
import hashlib
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ledger.models import AuditLog, PortalToken, User, UserSession
from ledger.services.context import INTERNAL
from ledger.services.people.backend_accounts import create_or_find_user
from ledger.services.people.portal import create_portal_link, use_portal_link
from ledger.services.people.sign_in import change_password
from tests.factories import UserFactory
from tests.helpers import AuthActions, funded_user, run_together, stop_the_clock


@pytest.fixture
def returns_to(app, monkeypatch):
    """The SaaS's own pages, where portal links may lead back to."""
    config = dataclasses.replace(app.config["LEDGER"], PORTAL_RETURN_HOSTS="app.saas.example, localhost:3000")
    monkeypatch.setitem(app.config, "LEDGER", config)
    return config


def ask_link(client, headers, user_id, **body):
    return client.post(f"/api/users/{user_id}/portal", json=body, headers=headers)


def path_of(url: str) -> str:
    return url.removeprefix("http://ledger.test")


def test_a_link_signs_the_person_in_once_and_lands_on_its_page_with_a_way_back(
    app, client, internal_headers, session, returns_to
):
    person = UserFactory(password_hash=None, balance="8.00")
    asked = ask_link(client, internal_headers, person.id, next="/usage", return_url="https://app.saas.example/billing")
    assert asked.status_code == 201
    link = asked.get_json()
    assert link["url"].startswith("http://ledger.test/portal/")
    browser = app.test_client()
    landed = browser.get(path_of(link["url"]))
    assert (landed.status_code, landed.headers["Location"]) == (302, "/usage")
    assert landed.headers["Referrer-Policy"] == "no-referrer"
    page = browser.get("/usage").get_data(as_text=True)
    assert 'data-testid="portal-return"' in page and 'href="https://app.saas.example/billing"' in page
    assert "返回 Ledger" in page
    login = session.scalars(select(UserSession).where(UserSession.user_id == person.id)).one()
    audit = session.scalars(
        select(AuditLog).where(AuditLog.user_id == person.id, AuditLog.action == "auth.login")
    ).one()
    assert (audit.actor, audit.details["via"], audit.details["session_id"]) == ("internal", "portal", str(login.id))
    # Once: a second click (or a prefetch that came first) leads to the sign-in page.
    again = app.test_client().get(path_of(link["url"]))
    assert (again.status_code, again.headers["Location"]) == (302, "/login")


def test_only_the_token_hash_is_kept_and_the_token_is_never_logged(client, internal_headers, session, caplog):
    person = UserFactory()
    url = ask_link(client, internal_headers, person.id).get_json()["url"]
    token = url.rsplit("/", 1)[1]
    kept = session.scalars(select(PortalToken).where(PortalToken.user_id == person.id)).one()
    assert kept.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (kept.next_path, kept.return_url) == ("/recharge", None)  # the default page
    caplog.set_level("INFO", logger="ledger")
    assert client.get(path_of(url)).headers["Location"] == "/recharge"
    assert token not in caplog.text


def test_an_expired_link_shows_the_sign_in_page_with_a_message(app, client, internal_headers, session, monkeypatch):
    person = UserFactory()
    asked_at = stop_the_clock(app, monkeypatch)
    url = ask_link(client, internal_headers, person.id).get_json()["url"]
    stop_the_clock(app, monkeypatch, asked_at + timedelta(minutes=10))
    refused = client.get(path_of(url), follow_redirects=True)
    assert refused.status_code == 200
    assert "登录链接已过期或已使用" in refused.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(UserSession)) == 0
    why = session.scalar(select(AuditLog.details).where(AuditLog.action == "portal.link_refused"))
    assert why["why"] == "expired"


@pytest.mark.parametrize("token", ["x" * 43, "short", "a" * 300])
def test_a_forged_link_shows_the_sign_in_page_never_an_error(client, session, token):
    refused = client.get(f"/portal/{token}", follow_redirects=True)
    assert refused.status_code == 200
    assert "登录链接已过期或已使用" in refused.get_data(as_text=True)


def test_a_person_disabled_after_the_link_was_made_is_not_signed_in(client, internal_headers, session):
    person = UserFactory()
    url = ask_link(client, internal_headers, person.id).get_json()["url"]
    person.disabled_at = person.created_at
    session.flush()
    assert client.get(path_of(url)).headers["Location"] == "/login"
    assert session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_no_link_for_a_disabled_or_unknown_person(client, internal_headers, session):
    disabled = UserFactory()
    disabled.disabled_at = disabled.created_at
    session.flush()
    refused = ask_link(client, internal_headers, disabled.id)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "account_disabled")
    missing = ask_link(client, internal_headers, uuid.uuid4())
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "user_not_found")
    assert session.scalar(select(func.count()).select_from(PortalToken)) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"next": "https://evil.example/"}, "next"),
        ({"next": "//evil.example/recharge"}, "next"),
        ({"next": "/admin"}, "next"),
        ({"next": "/recharge#x"}, "next"),
        ({"return_url": "https://evil.example/"}, "return_url"),
        ({"return_url": "https://app.saas.example.evil.example/"}, "return_url"),
        ({"return_url": "https://user@app.saas.example/"}, "return_url"),
        ({"return_url": "http://localhost:3001/"}, "return_url"),  # the port is part of the host
        ({"return_url": "javascript:alert(1)"}, "return_url"),
    ],
)
def test_a_page_or_return_url_elsewhere_is_a_422(client, internal_headers, session, returns_to, body, field):
    refused = ask_link(client, internal_headers, UserFactory().id, **body)
    assert refused.status_code == 422
    assert (refused.get_json()["error"]["code"], refused.get_json()["error"]["field"]) == ("invalid_request", field)
    assert session.scalar(select(func.count()).select_from(PortalToken)) == 0


def test_with_no_return_hosts_set_no_return_url_is_taken(client, internal_headers, session):
    refused = ask_link(client, internal_headers, UserFactory().id, return_url="https://app.saas.example/")
    assert (refused.status_code, refused.get_json()["error"]["field"]) == (422, "return_url")


def test_next_keeps_its_query_and_an_allowed_port_matches(client, internal_headers, session, returns_to):
    person = UserFactory()
    link = ask_link(
        client, internal_headers, person.id, next="/usage?group_by=model", return_url="http://localhost:3000/app"
    ).get_json()
    assert client.get(path_of(link["url"])).headers["Location"] == "/usage?group_by=model"


def test_a_person_without_a_password_sets_one_on_account_and_can_then_sign_in(app, client, internal_headers, session):
    person = UserFactory(password_hash=None)
    url = ask_link(client, internal_headers, person.id, next="/account").get_json()["url"]
    client.get(path_of(url))
    account = client.get("/account").get_data(as_text=True)
    assert 'data-testid="set-password"' in account
    token = account.split('name="csrf-token" content="')[1].split('"')[0]
    new = {"new": "a-new-password", "confirm": "a-new-password", "csrf_token": token}
    set_it = client.post("/security/password", data=new)
    assert (set_it.status_code, set_it.headers["Location"]) == (302, "/account")
    session.refresh(person)
    assert person.password_hash is not None
    other = AuthActions(app.test_client())
    assert other.login(person.email, "a-new-password").headers["Location"] == "/"
    assert session.scalar(select(AuditLog.action).where(AuditLog.action == "auth.password_set")) == "auth.password_set"


def test_a_person_without_a_password_cannot_sign_in_by_password(app, session):
    person = UserFactory(password_hash=None)
    for guess in ("", "not-a-real-password", "anything-at-all"):
        refused = AuthActions(app.test_client()).login(person.email, guess)
        assert refused.status_code in (400, 401, 422), guess
        assert "Location" not in refused.headers


@pytest.mark.committed
def test_one_link_clicked_twenty_times_at_once_signs_in_once(committed, settings):
    person = funded_user(committed, "1.00")
    with committed.session() as session:
        link = create_portal_link(session, user_id=str(person.id), ctx=INTERNAL.using(settings))
    token = link.url.rsplit("/", 1)[1]

    def click(_i):
        with committed.session() as session:
            return use_portal_link(session, token=token, ctx=INTERNAL).login.id

    results = run_together(20, click)
    entered = [r for r in results if isinstance(r, uuid.UUID)]
    assert len(entered) == 1, results
    assert all(getattr(r, "code", None) == "portal_link_unusable" for r in results if r not in entered)
    with committed.session() as session:
        assert session.scalar(select(func.count()).select_from(UserSession)) == 1


def test_no_link_signs_anyone_into_the_back_office(app, client, internal_headers, session):
    """The internal token charges and reads accounts: it must not open /admin through a portal link."""
    boss = UserFactory(is_admin=True)
    refused = ask_link(client, internal_headers, boss.id)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "admin_account")
    person = UserFactory()
    url = ask_link(client, internal_headers, person.id).get_json()["url"]
    person.is_admin = True  # made an admin after the link was made
    session.flush()
    assert client.get(path_of(url)).headers["Location"] == "/login"
    assert client.get("/admin").status_code == 404
    assert session.scalar(select(func.count()).select_from(UserSession)) == 0


def test_a_head_request_uses_nothing_and_the_get_after_it_signs_in(client, internal_headers, session):
    url = path_of(ask_link(client, internal_headers, UserFactory().id).get_json()["url"])
    assert client.head(url).status_code == 200  # a link checker or a chat app's preview
    assert client.get(url).headers["Location"] == "/recharge"


@pytest.mark.parametrize("mangled", ["{token}/", "{token}/extra", "a%2Fb"])
def test_a_mangled_link_shows_the_sign_in_page_and_its_token_stays_out_of_the_log(
    client, internal_headers, session, caplog, mangled
):
    token = ask_link(client, internal_headers, UserFactory().id).get_json()["url"].rsplit("/", 1)[1]
    caplog.set_level("INFO", logger="ledger")
    answer = client.get("/portal/" + mangled.format(token=token), follow_redirects=True)
    assert answer.status_code == 200 and "登录链接已过期或已使用" in answer.get_data(as_text=True)
    assert token not in caplog.text


def test_a_link_opened_where_someone_else_is_signed_in_signs_them_out(app, client, internal_headers, session):
    other, person = UserFactory(), UserFactory()
    AuthActions(client).login(other)
    before = session.scalars(select(UserSession).where(UserSession.user_id == other.id)).one()
    url = ask_link(client, internal_headers, person.id).get_json()["url"]
    assert client.get(path_of(url)).headers["Location"] == "/recharge"
    session.refresh(before)
    assert before.revoked_at is not None  # not left live behind the new person's cookie
    assert 'data-testid="portal-return"' not in client.get("/recharge").get_data(as_text=True)  # none asked


@pytest.mark.committed
def test_two_first_passwords_set_at_once_one_wins(committed):
    with committed.session() as session:
        user_id = create_or_find_user(session, email="first@example.com", ctx=INTERNAL).user.id

    def set_first(i):
        with committed.session() as session:
            person = session.get(User, user_id)  # read before either has set one: no password yet
            return change_password(session, person, current=None, new=f"password-{i}-x", keep=None, ctx=INTERNAL)

    results = run_together(2, set_first)
    assert sorted(type(r).__name__ for r in results) == ["WrongPassword", "int"], results
    with committed.session() as session:
        assert session.scalars(select(AuditLog.action).where(AuditLog.action == "auth.password_set")).all() == [
            "auth.password_set"
        ]
