"""/invites: the link, invitees masked, rewards, and binding a code from the page."""

import pytest
from sqlalchemy import func, select

from ledger.models import InviteRelation
from ledger.services.context import SYSTEM
from ledger.services.growth.invites import reward_invite
from tests.factories import InviteFactory, UserFactory


def test_invites_page_lists_invitees_masked_and_rewards(client, auth, session, settings):
    inviter = UserFactory()
    InviteFactory(inviter=inviter, invitee=UserFactory(email="bob.smith@example.com"))
    rewarded = InviteFactory(inviter=inviter, invitee=UserFactory(email="carol@example.org"))
    reward_invite(session, invitee_id=rewarded.invitee_id, ctx=SYSTEM.using(settings))
    auth.login(inviter)
    page = client.get("/invites").get_data(as_text=True)
    assert "b***@example.com" in page and "c***@example.org" in page and "bob.smith" not in page
    assert f"http://ledger.test/register?invite={inviter.invite_code}" in page
    assert 'data-testid="invited-count">2<' in page and "¥5.00" in page
    summary = client.get("/api/billing/summary").get_json()["invites"]
    assert summary == {
        "code": inviter.invite_code,
        "link": f"http://ledger.test/register?invite={inviter.invite_code}",
        "invited_count": 2,
        "rewards_total": "5.00",
    }


def test_invites_page_binds_a_code_and_shows_refusals(client, auth, session):
    me, friend = UserFactory(), UserFactory(email="dave@example.com")
    auth.login(me)
    refused = client.post("/invites", data={"code": me.invite_code, "csrf_token": auth.csrf_token("/invites")})
    assert refused.status_code == 422 and 'data-testid="bind-error"' in refused.get_data(as_text=True)
    done = client.post(
        "/invites", data={"code": friend.invite_code, "csrf_token": auth.csrf_token("/invites")}, follow_redirects=True
    )
    assert "d***@example.com" in done.get_data(as_text=True)
    assert session.scalars(select(InviteRelation.inviter_id)).one() == friend.id


@pytest.mark.parametrize(
    ("code", "message"),
    [("", "请输入邀请码。"), ("ab\x00cd", "没有人使用这个邀请码"), ("x" * 500, "没有人使用这个邀请码")],
)
def test_invites_page_says_why_a_code_is_refused(client, auth, session, code, message):
    auth.login(UserFactory())
    response = client.post("/invites", data={"code": code, "csrf_token": auth.csrf_token("/invites")})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(InviteRelation)) == 0


def test_the_page_says_why_an_invitation_earned_nothing_on_both_sides(client, auth, session, settings):
    from decimal import Decimal

    from tests.factories import PaymentFactory
    from tests.helpers import settle_by_notify

    inviter = UserFactory()
    relation = InviteFactory(inviter=inviter, invitee=UserFactory(email="dave@example.com"))
    settle_by_notify(session, PaymentFactory(user=relation.invitee, amount=Decimal("1.00")), settings)
    auth.login(inviter)
    page = client.get("/invites").get_data(as_text=True)
    assert "首次充值至少 ¥10.00" in page and "30 天内最多奖励 20 次邀请" in page  # the rules, up front
    assert 'data-testid="unrewarded">无奖励' in page and "首次充值低于 ¥10.00，此次邀请没有奖励。" in page
    auth.logout()
    auth.login(relation.invitee)
    client.set_cookie("lang", "en")
    own = client.get("/invites").get_data(as_text=True)
    assert "The first top-up was below ¥10.00, so this invitation earned no reward." in own
