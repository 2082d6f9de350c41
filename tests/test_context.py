"""The operation context (services.context): what every operation is given beside its input."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger.errors import InvalidRequest
from ledger.models import Actor
from ledger.services.context import INTERNAL, SYSTEM, USER_AGENT_MAX, Context, reason_of


def test_a_user_agent_is_cut_to_what_the_rows_keep_and_made_storable():
    long = Context(Actor.USER, user_agent="M" * (USER_AGENT_MAX + 100))
    assert long.user_agent == "M" * USER_AGENT_MAX
    assert Context(Actor.USER, user_agent="a\x00b").user_agent == "a\ufffdb"  # PostgreSQL text has no NUL
    assert Context(Actor.USER, user_agent="").user_agent is None
    assert Context(Actor.USER, user_agent=None).user_agent is None


def test_at_stops_the_clock_at_an_instant_in_utc_and_leaves_the_rest():
    shanghai = timezone(timedelta(hours=8))
    stopped = INTERNAL.at(datetime(2027, 1, 31, 23, 59, 59, tzinfo=shanghai))
    assert stopped.now() == datetime(2027, 1, 31, 15, 59, 59, tzinfo=UTC)
    assert stopped.now().tzinfo is UTC and stopped.now() == stopped.now()
    assert (stopped.actor, stopped.ip, stopped.admin_id) == (INTERNAL.actor, None, None)
    assert abs(INTERNAL.now() - datetime.now(UTC)) < timedelta(minutes=1)  # the wall clock otherwise


def test_an_admin_context_says_who_how_and_why():
    admin_id = uuid.uuid4()
    ctx = Context(Actor.USER, ip="203.0.113.9").as_admin(admin_id)
    assert (ctx.actor, ctx.admin_id, ctx.via, ctx.ip) == (Actor.ADMIN, admin_id, "web", "203.0.113.9")
    assert ctx.admin_details("asked by phone", amount="5.00") == {
        "admin_id": str(admin_id),
        "via": "web",
        "reason": "asked by phone",
        "amount": "5.00",
    }
    console = SYSTEM.as_admin(None, via="cli")
    assert console.admin_details("seed") == {"admin_id": None, "via": "cli", "reason": "seed"}


def test_settings_are_there_only_when_given(settings):
    with pytest.raises(RuntimeError, match="settings="):
        INTERNAL.config  # noqa: B018 (the property is what is tested)
    ctx = INTERNAL.using(replace(settings, LOW_BALANCE_THRESHOLD=settings.LOW_BALANCE_THRESHOLD + 1))
    assert ctx.config.LOW_BALANCE_THRESHOLD == settings.LOW_BALANCE_THRESHOLD + 1
    assert ctx == INTERNAL  # settings and clock do not make another actor


@pytest.mark.parametrize("raw", [None, "", "   ", "x" * 501, 42])
def test_an_admin_actions_reason_is_one_to_500_characters(raw):
    with pytest.raises(InvalidRequest) as refused:
        reason_of(raw)
    assert refused.value.field == "reason"


def test_a_reason_is_kept_as_given_trimmed():
    assert reason_of("  refund: charged twice  ") == "refund: charged twice"
    assert reason_of("x" * 500) == "x" * 500
