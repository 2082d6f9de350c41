"""Events to the SaaS (SPEC 16): written with their change and never without it, posted signed to a
real local receiver, retried with backoff after a 500 and a timeout, given up after 24 hours,
replayed on demand."""

import json
import logging
import re
import socket
import time
from dataclasses import replace as replaced
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text
from werkzeug import Response

from ledger import create_app
from ledger.db import atomic
from ledger.errors import InsufficientBalance
from ledger.models import Event, EventStatus, EventType, LedgerEntry
from ledger.services.backoffice.people import adjust
from ledger.services.books.accounts import credit
from ledger.services.books.charges import charge_usage
from ledger.services.books.holds import expire_holds, place_hold
from ledger.services.books.invariants import find_breaches, find_warnings
from ledger.services.context import INTERNAL, SYSTEM
from ledger.services.events import (
    CONNECT_TIMEOUT,
    LEASE,
    READ_TIMEOUT,
    backoff,
    deliver_due,
    emit_change,
    replay,
    sample_event,
    signature,
    verify_signature,
)
from ledger.services.payments.refunds import refund_order
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, funded_user, settle_by_notify, trickling_peer, wait_until

SECRET = "events-secret-for-tests"


def events(session, owner=None) -> list[Event]:
    """The events of a person, by time then type (one test is one transaction: one now())."""
    query = select(Event).order_by(Event.created_at, Event.type)
    if owner is not None:
        query = query.where(Event.user_id == owner.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))


def test_a_top_up_writes_topup_succeeded_with_the_balance_it_left(session, settings):
    person = UserFactory(balance="3.00")
    order = PaymentFactory(user=person, amount=Decimal("50.00"))
    settle_by_notify(session, order, settings)
    [event] = events(session, person)
    assert (event.type, event.status, event.attempts) == ("topup.succeeded", "pending", 0)
    assert event.data == {
        "user_id": str(order.user_id),
        "transaction_id": str(order.id),
        "amount": "50.00",
        "balance": "53.00",
        "available": "53.00",
    }


def test_an_adjustment_and_an_expired_hold_each_write_their_event(session):
    person = UserFactory(balance="20.00")
    adjust(session, ADMIN, person.id, "5.00", debit=False, reason="goodwill")
    hold = place_hold(session, user_id=person.id, amount="4.00", model="v", request_id="h1", ctx=INTERNAL).hold
    expire_holds(session, SYSTEM.at(hold.expires_at + timedelta(seconds=1)))
    got = [(e.type.value, e.data) for e in events(session, person)]
    adjusted = session.scalar(select(func.max(LedgerEntry.id)).where(LedgerEntry.user_id == person.id))
    assert got == [
        (
            "balance.adjusted",
            {
                "user_id": str(person.id),
                "entry_id": adjusted,  # the ledger entry of the adjustment: its resource (SPEC 16)
                "amount": "5.00",
                "balance": "25.00",
                "available": "25.00",
            },
        ),
        (
            "hold.expired",
            {
                "user_id": str(person.id),
                "hold_id": str(hold.id),
                "request_id": "h1",
                "amount": "4.00",
                "balance": "25.00",
                "available": "25.00",
            },
        ),
    ]
    assert "goodwill" not in json.dumps(got)  # the admin's reason stays in the back office


def test_a_refused_change_writes_no_event(session):
    person = UserFactory(balance="12.00")
    with pytest.raises(InsufficientBalance):
        charge_usage(session, user_id=person.id, amount="20.00", model="m", request_id="r", ctx=INTERNAL)
    assert events(session, person) == []  # 12.00 -> refused: no crossing either


def test_the_signature_is_an_hmac_of_the_time_and_the_body():
    body = b'{"id":"e1"}'
    header = signature(SECRET, body, 1_790_000_000)
    assert (
        header
        == "t=1790000000,v1=" + __import__("hmac").new(SECRET.encode(), b'1790000000.{"id":"e1"}', "sha256").hexdigest()
    )
    assert verify_signature(SECRET, body, header, now=1_790_000_100)
    assert not verify_signature(SECRET, body + b" ", header, now=1_790_000_100)  # another body
    assert not verify_signature("another-secret-here", body, header, now=1_790_000_100)
    assert not verify_signature(SECRET, body, header, now=1_790_000_000 + 301)  # too old: a replay
    assert not verify_signature(SECRET, body, "v1=abc", now=1_790_000_000)
    assert not verify_signature(SECRET, body, "t=1790000000,v1=é", now=1_790_000_000)  # no crash on non-ASCII
    assert not verify_signature(SECRET, body, "t=١٧٩,v1=ab", now=1_790_000_000)
    rotating = header.replace("v1=", "v1=0000,v1=")  # an old secret's MAC first, then ours
    assert verify_signature(SECRET, body, rotating, now=1_790_000_100)


def test_the_receivers_check_that_readme_shows_accepts_our_signature_and_nothing_else():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (snippet,) = re.findall(r"```python\n((?:(?!```).)*?def verified.*?)```", readme, re.S)
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 -- our own README, run to prove what it shows
    verified = namespace["verified"]
    body, now = b'{"id":"e1","type":"balance.low"}', int(time.time())
    assert verified(SECRET, body, signature(SECRET, body, now))
    assert not verified(SECRET, body + b" ", signature(SECRET, body, now))
    assert not verified(SECRET, body, signature(SECRET, body, now - 301))
    assert not verified("another-secret-here", body, signature(SECRET, body, now))
    assert not verified(SECRET, body, "garbage")
    assert not verified(SECRET, body, f"t={now},v1=é")  # a forged header is refused, not a crash


def test_backoff_doubles_from_10_seconds_up_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4, 9, 10, 30)] == [10, 20, 40, 80, 2560, 3600, 3600]


def test_delivery_retries_a_500_and_a_timeout_then_delivers_signed_once(session, httpserver):
    person = UserFactory(balance="15.00")
    adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    [event] = events(session, person)
    received = []

    def answer(request):
        received.append(request)
        if len(received) == 1:
            return Response("down", status=500)
        if len(received) == 2:
            time.sleep(0.8)  # longer than the client waits
        return Response("ok", status=200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(answer)
    url, start = httpserver.url_for("/hook"), datetime.now(UTC)

    def run(at):
        return deliver_due(session, SYSTEM.at(at), url=url, secret=SECRET, timeout=0.5)

    first = run(start)
    assert (first.delivered, first.failed) == (0, 1)
    assert (event.status, event.attempts, event.last_error) == ("pending", 1, "HTTP 500")
    assert event.next_attempt_at == start + timedelta(seconds=10)
    assert run(start + timedelta(seconds=5)).failed == 0  # not due yet: nothing sent
    second = run(start + timedelta(seconds=10))
    assert second.failed == 1 and event.last_error.startswith(("ReadTimeout", "Timeout"))
    assert event.next_attempt_at == start + timedelta(seconds=30)  # 10 s + 20 s
    wait_until(lambda: len(httpserver.log) == 2, what="the receiver's answer nobody waited for")  # one thread
    third = run(start + timedelta(seconds=30))
    assert (third.delivered, event.status, event.attempts, event.last_error) == (1, "delivered", 3, None)
    assert run(start + timedelta(hours=1)).delivered == 0  # delivered: never sent again

    assert len(received) == 3
    for request in received:  # the same event each time: the receiver dedupes by id
        body = request.get_data()
        assert verify_signature(SECRET, body, request.headers["X-Ledger-Signature"])
        sent = json.loads(body)
        assert sent["id"] == str(event.id) and sent["type"] == "balance.adjusted"
        assert sent["data"]["balance"] == "16.00" and set(sent) == {"id", "type", "created_at", "data"}


def test_an_event_undelivered_for_24_hours_is_abandoned_and_replay_sends_it_again(session, httpserver):
    person = UserFactory(balance="15.00")
    adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    [event] = events(session, person)
    httpserver.expect_request("/hook").respond_with_data("no", status=503)
    url = httpserver.url_for("/hook")
    later = event.give_up_at + timedelta(seconds=1)
    assert deliver_due(session, SYSTEM.at(later), url=url, secret=SECRET).abandoned == 1
    assert event.status == "abandoned"
    assert replay(session, SYSTEM, since=event.created_at - timedelta(seconds=1)) == 1
    session.refresh(event)
    assert (event.status, event.attempts) == ("pending", 0)
    assert event.give_up_at > datetime.now(UTC) + timedelta(hours=23)
    httpserver.clear()
    httpserver.expect_request("/hook").respond_with_data("ok")
    assert deliver_due(session, SYSTEM, url=url, secret=SECRET).delivered == 1


def test_each_post_waits_at_most_3_seconds_to_connect_and_5_to_read(session, httpserver):
    person = UserFactory(balance="15.00")
    adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    httpserver.expect_request("/hook").respond_with_data("ok")
    asked = []

    def post(url, **options):
        asked.append(options["timeout"])
        return requests.post(url, **options)  # noqa: S113 -- the timeout is in the options

    assert deliver_due(session, SYSTEM, url=httpserver.url_for("/hook"), secret=SECRET, post=post).delivered == 1
    assert asked == [(3.0, 5.0)] == [(CONNECT_TIMEOUT, READ_TIMEOUT)]


def adjusted_events(session, count: int) -> list[Event]:
    """`count` events of one person, oldest first (each due a second after the one before)."""
    person = UserFactory(balance="50.00")
    for _ in range(count):
        adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    made = events(session, person)
    for n, event in enumerate(made):
        event.next_attempt_at = event.created_at + timedelta(seconds=n)
    session.flush()
    return made


class HangingPosts:
    """Posts that each take as long as a receiver that never answers makes them (connect, then the
    read timeout), on a clock of their own: the run's `monotonic`."""

    def __init__(self) -> None:
        self.seconds, self.sent = 0.0, []

    def __call__(self, url, **options):
        self.sent.append(json.loads(options["data"])["id"])
        self.seconds += CONNECT_TIMEOUT + READ_TIMEOUT
        raise requests.ReadTimeout("read timed out")

    def monotonic(self) -> float:
        return self.seconds


def test_a_run_starts_no_post_after_20_seconds_and_leaves_the_rest_due_for_the_next(session):
    made = adjusted_events(session, 5)
    hanging, start = HangingPosts(), made[-1].next_attempt_at
    done = deliver_due(
        session, SYSTEM.at(start), url="http://saas.test/hook", secret=SECRET, post=hanging, monotonic=hanging.monotonic
    )
    assert (done.delivered, done.failed) == (0, 3)  # posts started at 0, 8 and 16 s; none at 24 s
    assert hanging.seconds == 24.0  # the run's length against a receiver that hangs: under half a minute
    assert hanging.sent == [str(e.id) for e in made[:3]]  # the oldest first
    waiting = made[3:]
    assert [(e.attempts, e.next_attempt_at <= start) for e in waiting] == [(0, True), (0, True)]
    later = deliver_due(
        session, SYSTEM.at(start), url="http://saas.test/hook", secret=SECRET, post=hanging, monotonic=hanging.monotonic
    )
    assert later.failed == 2 and hanging.sent[3:] == [str(e.id) for e in waiting]


def test_a_receiver_that_trickles_its_answer_cannot_hold_a_post_past_its_timeouts(session):
    # A receiver (or a proxy before it) that sends its status line, then a byte of header every
    # 0.2 s for 3 s: no single read waits 0.5 s, so requests never times out.
    (event,) = adjusted_events(session, 1)
    started = time.monotonic()
    with trickling_peer(pause=0.2, bytes_=15) as (port, cut):
        deliver_due(session, SYSTEM, url=f"http://127.0.0.1:{port}/hook", secret=SECRET, timeout=(0.5, 0.5), budget=1.0)
    assert time.monotonic() - started < 1.0 + 0.5 + 0.5 + 0.5  # budget, connect, read, and slack
    assert cut == [True]
    session.refresh(event)
    assert (event.status, event.attempts, event.last_error) == ("pending", 1, "DeadlinePassed: no answer within 1 s")


def test_a_run_posts_at_most_its_limit_and_leaves_the_rest_due_for_the_next(session, httpserver):
    made = adjusted_events(session, 5)
    httpserver.expect_request("/hook").respond_with_data("ok")
    url, start = httpserver.url_for("/hook"), made[-1].next_attempt_at
    assert deliver_due(session, SYSTEM.at(start), url=url, secret=SECRET, limit=2).delivered == 2
    assert [e.status for e in made] == ["delivered", "delivered", "pending", "pending", "pending"]
    assert deliver_due(session, SYSTEM.at(start), url=url, secret=SECRET, limit=2).delivered == 2
    assert deliver_due(session, SYSTEM.at(start), url=url, secret=SECRET, limit=2).delivered == 1
    assert len(httpserver.log) == 5


def committed_event(committed) -> Event:
    person = funded_user(committed, "5.00")
    with committed.session() as session:
        adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
        return session.scalars(select(Event).where(Event.user_id == person.id)).one()


@pytest.mark.committed
def test_no_transaction_is_open_and_no_row_locked_while_an_event_is_posted(committed, httpserver):
    event = committed_event(committed)
    seen = []

    def answer(request):
        try:
            with committed.session() as other, other.begin():  # another worker, while the post is in flight
                other.execute(text("SELECT id FROM events WHERE id = :id FOR UPDATE NOWAIT"), {"id": event.id})
                open_elsewhere = other.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state LIKE 'idle in transaction%'"
                    )
                )
            with committed.session() as other:
                second = deliver_due(other, SYSTEM, url=httpserver.url_for("/hook"), secret=SECRET)
            seen.append((open_elsewhere, second.delivered + second.failed))
        except Exception as exc:  # asserted on below
            seen.append(exc)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(answer)
    with committed.session() as session:
        assert deliver_due(session, SYSTEM, url=httpserver.url_for("/hook"), secret=SECRET).delivered == 1
    assert seen == [(0, 0)]  # unlocked, no transaction left open, and the lease kept the second run off it
    with committed.session() as session:
        assert session.get(Event, event.id).status == "delivered"


@pytest.mark.committed
def test_an_event_replayed_while_it_is_posted_is_sent_again(committed, httpserver):
    event = committed_event(committed)

    def answer(request):
        with committed.session() as other:
            replay(other, SYSTEM, since=event.created_at)
        return Response("ok")

    httpserver.expect_request("/hook").respond_with_handler(answer)
    with committed.session() as session:
        deliver_due(session, SYSTEM, url=httpserver.url_for("/hook"), secret=SECRET)
        again = session.get(Event, event.id, populate_existing=True)
        assert (again.status, again.attempts) == ("pending", 0)  # the replay wins: due now, not leased
        assert again.next_attempt_at < datetime.now(UTC) < again.next_attempt_at + LEASE


@pytest.mark.committed
def test_a_token_and_a_password_in_events_url_reach_neither_the_logs_nor_last_error_nor_verify(
    settings, database, committed, caplog
):
    with socket.socket() as probe:  # a port nothing listens on once it is closed: refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://user:pass@127.0.0.1:{port}/hook?token=s3cret"
    event = committed_event(committed)
    with caplog.at_level(logging.INFO), committed.session() as session:
        assert deliver_due(session, SYSTEM, url=url, secret=SECRET).failed == 1
    with committed.session() as session, session.begin():  # stuck long enough for verify to warn of it
        session.execute(
            text("UPDATE events SET created_at = now() - interval '11 minutes' WHERE id = :id"), {"id": event.id}
        )
    with committed.session() as session:
        last_error = session.get(Event, event.id).last_error
    hooked = create_app(replaced(settings, EVENTS_URL=url, EVENTS_SECRET="s" * 32), database)
    verify = hooked.test_cli_runner().invoke(args=["ledger", "verify"])
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)

    assert last_error == (
        f"ConnectionError: HTTPConnectionPool(host='127.0.0.1', port={port}): Max retries exceeded with url: /…"
        f" (Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port={port}): Failed to establish a new"
        ' connection: [Errno 111] Connection refused"))'
    )
    assert f"event {event.id}: balance.adjusted, 1 attempt(s), last: {last_error}" in verify.output
    assert f"'url': 'http://127.0.0.1:{port}'" in logged and "Max retries exceeded with url: /… (" in logged
    for told in (last_error, verify.output, logged):
        assert "s3cret" not in told and "pass" not in told


def test_the_post_still_goes_to_the_whole_events_url(session, httpserver):
    person = UserFactory(balance="15.00")
    adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    httpserver.expect_request("/hook", method="POST", query_string="token=s3cret").respond_with_data("ok")
    url = f"http://user:pass@{httpserver.host}:{httpserver.port}/hook?token=s3cret"
    assert deliver_due(session, SYSTEM, url=url, secret=SECRET).delivered == 1
    [(request, _answer)] = httpserver.log
    assert (request.args["token"], request.authorization.username, request.authorization.password) == (
        "s3cret",
        "user",
        "pass",
    )


def test_without_an_events_url_nothing_is_sent_and_events_wait(session):
    person = UserFactory(balance="15.00")
    adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    assert deliver_due(session, SYSTEM, url="", secret="").delivered == 0
    assert [e.status for e in events(session, person)] == [EventStatus.PENDING]


def test_an_event_is_rolled_back_with_its_change(session):
    person = UserFactory(balance="5.00")
    with pytest.raises(RuntimeError), atomic(session):
        credit(session, user_id=person.id, amount=Decimal("1.00"), kind="adjustment", ctx=INTERNAL, action="x")
        emit_change(session, EventType.BALANCE_ADJUSTED, user_id=person.id, amount=Decimal("1.00"))
        raise RuntimeError("the change fails after its event was added")
    assert events(session, person) == []


def test_refunds_tell_whether_the_money_left(session, settings, xorpay):
    person = UserFactory()
    order = PaymentFactory(user=person)
    settle_by_notify(session, order, settings)
    xorpay.refund_answers("ok")
    assert refund_order(session, xorpay.client, ADMIN, order.id, "20.00", reason="asked").status == "succeeded"
    xorpay.server.clear()
    xorpay.refund_answers("order_error")
    assert refund_order(session, xorpay.client, ADMIN, order.id, "5.00", reason="again").status == "failed"
    got = [(e.type.value, e.data["amount"], e.data["balance"], e.data["available"]) for e in events(session, person)]
    assert sorted(got) == [
        ("refund.failed", "5.00", "30.00", "30.00"),
        ("refund.succeeded", "20.00", "30.00", "30.00"),
        ("topup.succeeded", "50.00", "50.00", "50.00"),
    ]


def test_verify_finds_a_top_up_event_told_twice_or_of_someone_else(session, settings):
    person, stranger = UserFactory(), UserFactory()
    order = PaymentFactory(user=person)
    settle_by_notify(session, order, settings)
    assert list(find_breaches(session)) == []
    [told] = events(session, person)
    session.add(Event(type=told.type, user_id=stranger.id, data=told.data, give_up_at=told.give_up_at))
    session.flush()
    [breach] = find_breaches(session)
    assert breach.invariant.startswith("16 a topup.succeeded event") and "2 event(s)" in breach.detail


def test_verify_warns_of_events_stuck_only_when_they_are_sent(session):
    person = UserFactory(balance="5.00")
    adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    [event] = events(session, person)
    event.created_at -= timedelta(minutes=11)
    session.flush()
    assert [w.subject for w in find_warnings(session)] == [f"event {event.id}"]
    assert list(find_warnings(session, events_sent=False)) == []


@pytest.fixture
def events_to(app, monkeypatch):
    """The app posting events to `url` (EVENTS_URL) with SECRET."""

    def configured(url: str) -> None:
        monkeypatch.setitem(app.config, "LEDGER", replaced(app.config["LEDGER"], EVENTS_URL=url, EVENTS_SECRET=SECRET))

    return configured


@pytest.mark.parametrize("type_", list(EventType))
def test_send_test_posts_the_documented_sample_signed_as_deliveries_are(app, session, httpserver, events_to, type_):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok", status=204)
    events_to(httpserver.url_for("/hook"))
    done = app.test_cli_runner().invoke(args=["events", "send-test", type_.value])
    assert done.exit_code == 0, done.output
    [(received, _)] = httpserver.log
    sent = json.loads(received.get_data())
    assert done.stdout == f"{type_.value} sample {sent['id']}: HTTP 204\n"
    assert verify_signature(SECRET, received.get_data(), received.headers["X-Ledger-Signature"])
    assert received.headers["X-Request-ID"] == sent["id"] and received.headers["User-Agent"] == "Ledger-Events/1"
    # The document's sample, with an id of its own (a receiver that dedupes takes every test)
    sample = sample_event(type_)
    assert (sent["type"], sent["data"]) == (sample["type"], sample["data"]) and sent["id"] != sample["id"]
    assert events(session) == []  # nothing written


def test_send_test_says_what_the_receiver_answered_and_fails_unless_2xx(app, httpserver, events_to):
    httpserver.expect_request("/hook").respond_with_data("nope", status=400)
    events_to(httpserver.url_for("/hook"))
    done = app.test_cli_runner().invoke(args=["events", "send-test", "balance.low"])
    assert done.exit_code == 1 and done.stdout.endswith(": HTTP 400\n")
    events_to("http://127.0.0.1:9/hook")  # nobody listens
    down = app.test_cli_runner().invoke(args=["events", "send-test", "balance.low"])
    assert down.exit_code == 1 and "not delivered (ConnectionError" in down.stderr


def test_send_test_needs_an_events_url_and_a_known_type(app, events_to):
    events_to("")
    empty = app.test_cli_runner().invoke(args=["events", "send-test", "topup.succeeded"])
    assert empty.exit_code == 1 and "EVENTS_URL is empty" in empty.stderr
    unknown = app.test_cli_runner().invoke(args=["events", "send-test", "topup.done"])
    assert unknown.exit_code == 2
    assert all(t.value in unknown.stderr for t in EventType)  # the types it knows, listed
