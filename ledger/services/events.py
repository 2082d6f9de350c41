"""Events to the SaaS (SPEC 16): an outbox written in the transaction of each change, delivered at
least once by the worker, signed like Stripe's webhooks, retried with backoff for 24 hours.

`emit` adds an event to the caller's transaction: it exists exactly when the change does.
`deliver_due` (the worker's job, every 10 seconds) posts the events that are due, one at a time:
it claims each in a short transaction (SKIP LOCKED, then a lease on the row), posts it with no
transaction open, and records the outcome in another short transaction, so that several workers
share the work without sending one event at the same moment and a slow receiver holds no lock.
Each run is bounded (a count, a time budget, short timeouts): a receiver that hangs delays only
the events. Any 2xx is delivery. `replay` makes events due again (`flask events replay`).
The receiver dedupes by the event's `id` and checks `X-Ledger-Signature` as `signature` makes it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ledger.db import atomic
from ledger.logs import bound_request_id, current_request_id, redacted_url, without_url_secrets
from ledger.models import BillingAccount, Event, EventStatus, EventType
from ledger.money import to_api
from ledger.services.context import Context
from ledger.services.outbound import post_within

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=10)
LONGEST_WAIT = timedelta(hours=1)
# A post waits at most this long to connect and then between bytes of the answer (requests'
# timeouts), and at most their sum in all (outbound.post_within: a receiver that trickles its
# answer is cut off); a receiver should answer at once and do its work after.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
TIMEOUT = (CONNECT_TIMEOUT, READ_TIMEOUT)
# One run posts at most BATCH events and starts no post after RUN_BUDGET seconds: it ends within
# RUN_BUDGET plus one post (under 30 s) however the receiver behaves; the rest waits for the next run.
BATCH = 200
RUN_BUDGET = 20.0
# A claimed event is not due again before its lease ends: far longer than one post can take, so
# that no other run sends it meanwhile; a worker that dies mid-post leaves it due again after it.
LEASE = timedelta(minutes=2)
SIGNATURE_HEADER = "X-Ledger-Signature"

Post = Callable[..., requests.Response]
Timeout = float | tuple[float, float]


def post_event(url: str, **options: Any) -> requests.Response:
    """requests.post with `options`, ended when its timeouts' sum has passed, whatever the receiver
    does (connect and read alike when `timeout` is one number, as requests takes it)."""
    timeout = options["timeout"]
    deadline = sum(timeout) if isinstance(timeout, tuple) else 2 * timeout
    return post_within(url, deadline=deadline, **options)


def emit(
    session: Session,
    type_: EventType,
    *,
    user_id: uuid.UUID,
    balance: Decimal,
    available: Decimal,
    **data: object,
) -> Event:
    """Add an event to the caller's transaction. `data` names the resource and the amount; money
    (Decimal) is written as exact strings, with the person's balance and available amount after
    the change."""
    body = {"user_id": str(user_id), **{k: _plain(v) for k, v in data.items()}}
    body |= {"balance": to_api(balance), "available": to_api(available)}
    event = Event(
        id=uuid.uuid4(),
        type=type_,
        user_id=user_id,
        data=body,
        request_id=current_request_id(),
        give_up_at=func.now() + GIVE_UP_AFTER,  # the transaction's time, as created_at
    )
    session.add(event)
    return event


def emit_change(session: Session, type_: EventType, *, user_id: uuid.UUID, **data: object) -> Event:
    """`emit`, with the balance and available amount as this transaction leaves the person's
    account (locked earlier in it, so read from the session without a query)."""
    account = session.get(BillingAccount, user_id)
    assert account is not None, "emit_change after the account was locked in this transaction"
    return emit(session, type_, user_id=user_id, balance=account.balance, available=account.available, **data)


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return to_api(value)
    if isinstance(value, uuid.UUID | datetime):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    return value


def body_of(event: Event) -> bytes:
    """What is posted: {"id", "type", "created_at", "data"}, compact JSON."""
    return _encoded(envelope(event.id, event.type, event.created_at, event.data))


def envelope(event_id: uuid.UUID, type_: EventType, created_at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """An event as the receiver reads it (SPEC 16)."""
    return {"id": str(event_id), "type": type_.value, "created_at": created_at.isoformat(), "data": data}


def _encoded(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes, at: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the value of X-Ledger-Signature."""
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """The receiver's check (README shows it in ten lines): a v1 MAC that matches, made within
    `tolerance` seconds (a replayed old post is refused). Every v1 is tried, as a header may carry
    two while a secret is rotated; anything malformed is simply False."""
    pairs = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [value for key, value in pairs if key.strip() == "t"]
    if len(stamps) != 1 or not (stamps[0].isascii() and stamps[0].isdigit()):
        return False
    at = int(stamps[0])
    if abs((time.time() if now is None else now) - at) > tolerance:
        return False
    expected = signature(secret, body, at).encode()
    given = [f"t={at},v1={value}".encode("utf-8", "replace") for key, value in pairs if key.strip() == "v1"]
    return any(hmac.compare_digest(expected, candidate) for candidate in given)


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: 10 s, 20 s, 40 s ... at most an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


@dataclass
class Delivery:
    delivered: int = 0
    failed: int = 0
    abandoned: int = 0


@dataclass(frozen=True)
class _Claim:
    """An event taken for one post: what is sent, and the lease that marks the row as ours."""

    event_id: uuid.UUID
    body: bytes
    request_id: str | None
    leased_until: datetime


def deliver_due(
    session: Session,
    ctx: Context,
    *,
    url: str,
    secret: str,
    post: Post = post_event,
    limit: int = BATCH,
    budget: float = RUN_BUDGET,
    timeout: Timeout = TIMEOUT,
    monotonic: Callable[[], float] = time.monotonic,
) -> Delivery:
    """Post the events that were due when the run started, oldest first: at most `limit`, and no
    post started once `budget` seconds (by `monotonic`) have passed; the others wait for the next
    run. Each event is claimed in a short transaction (the row locked SKIP LOCKED, its
    `next_attempt_at` pushed `LEASE` ahead), posted with no transaction open (`timeout`: connect,
    read), and its outcome written in another short transaction, only if the lease is still ours
    (a replay or, after the lease ran out, another run took it over). A 2xx marks it delivered;
    anything else (status, timeout, refused connection) is retried after `backoff` until its
    `give_up_at` (24 hours after the event, or after its replay), then it is abandoned (`replay`
    can send it again). Times are the context's clock; nothing is sent when `url` is empty."""
    done = Delivery()
    if not url:
        return done
    due_by, started = ctx.now(), monotonic()
    for _ in range(limit):
        if monotonic() - started >= budget:
            break
        with atomic(session):
            event = session.scalars(
                select(Event)
                .where(Event.status == EventStatus.PENDING, Event.next_attempt_at <= due_by)
                .order_by(Event.next_attempt_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if event is None:
                break
            clock = ctx.now()
            if clock >= event.give_up_at:
                event.status = EventStatus.ABANDONED
                done.abandoned += 1
                continue
            event.next_attempt_at = clock + LEASE
            claim = _Claim(event.id, body_of(event), event.request_id, event.next_attempt_at)
        error = _send(claim, url, secret, post, timeout)  # no transaction open: the lease keeps others off
        with atomic(session):
            _record(session, claim, error, ctx.now())
        if error is None:
            done.delivered += 1
        else:
            done.failed += 1
    return done


def _record(session: Session, claim: _Claim, error: str | None, clock: datetime) -> None:
    """Write the outcome of a post, if the event is still ours (pending, under our lease)."""
    event = session.get(Event, claim.event_id, with_for_update=True, populate_existing=True)
    if event is None or event.status != EventStatus.PENDING or event.next_attempt_at != claim.leased_until:
        log.info("event taken over during its post", extra={"fields": {"event_id": str(claim.event_id)}})
        return
    event.attempts += 1
    if error is None:
        event.status, event.delivered_at, event.last_error = EventStatus.DELIVERED, clock, None
    else:
        event.next_attempt_at, event.last_error = clock + backoff(event.attempts), error[:300]


def _headers(secret: str, body: bytes, request_id: str) -> dict[str, str]:
    """The headers of every post of an event, a sample's too: signed now (X-Ledger-Signature)."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, body, int(time.time())),
        "X-Request-ID": request_id,
        "User-Agent": "Ledger-Events/1",
    }


def _send(claim: _Claim, url: str, secret: str, post: Post, timeout: Timeout) -> str | None:
    """Post one event to `url` (whole: its query and credentials too); None when the receiver
    answered 2xx, else why not, told (and logged) without the URL's query and credentials."""
    headers = _headers(secret, claim.body, claim.request_id or str(claim.event_id))
    shown = {"event_id": str(claim.event_id), "url": redacted_url(url)}
    with bound_request_id(claim.request_id):
        try:
            # stream: only the status is read; a body the receiver trickles is not waited for
            with post(
                url, data=claim.body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            ) as answer:
                status = answer.status_code
        except requests.RequestException as exc:
            # Its text quotes the path and query asked for: a token there stays out of logs and rows.
            error = without_url_secrets(f"{type(exc).__name__}: {exc}", url)
            log.warning("event not delivered", extra={"fields": {**shown, "error": error}})
            return error
        if 200 <= status < 300:
            return None
        log.warning("event refused", extra={"fields": {**shown, "status": status}})
        return f"HTTP {status}"


def replay(session: Session, ctx: Context, *, since: datetime, type_: EventType | None = None) -> int:
    """Make every event created since `since` (of `type_`) due now, delivered or not; returns how
    many. They are sent again with their own ids, so a receiver that dedupes sees no double. An
    event being posted at that moment is sent again too: the replay ends its lease, so the post's
    outcome is not written over it."""
    now, where = ctx.now(), [Event.created_at >= since]
    if type_ is not None:
        where.append(Event.type == type_)
    with atomic(session):
        result = session.execute(
            update(Event)
            .where(*where)
            .values(
                status=EventStatus.PENDING,
                delivered_at=None,
                next_attempt_at=now,
                give_up_at=now + GIVE_UP_AFTER,
                attempts=0,
            )
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- samples: one event of each type, as the OpenAPI document's webhooks show them and as
# `flask events send-test` posts them to a receiver being built (the same data in both places).

SAMPLE_USER_ID = "4c6f0c2e-9b8a-4f4e-9d6b-3c1f8b2a7e10"
SAMPLE_EVENT_ID = uuid.UUID("9a1d7c36-5e2b-4f80-8c41-2d6b0e9f3a57")
SAMPLE_CREATED_AT = datetime.fromisoformat("2026-12-08T10:15:00+08:00")
_ORDER_ID = "1f0e4b7a-62c9-4d35-9a8e-7c3b5d2e1f04"
_SUBSCRIPTION_ID = "b5e2c8d1-4f3a-4a7b-9c60-2d8e1f7a3b94"
# `data` by type, as `emit` writes it: the person, the resource, the amount, then the balance and
# available amount after the change (money as strings, SPEC 16).
SAMPLES: dict[EventType, dict[str, Any]] = {
    EventType.TOPUP_SUCCEEDED: {
        "user_id": SAMPLE_USER_ID,
        "transaction_id": _ORDER_ID,
        "amount": "50.00",
        "balance": "149.80",
        "available": "141.80",
    },
    EventType.BALANCE_LOW: {
        "user_id": SAMPLE_USER_ID,
        "threshold": "10.00",
        "usage_id": "5b8e2f1c-3d4a-4e6b-9f70-a1c2d3e4f506",
        "amount": "0.20",
        "balance": "9.80",
        "available": "9.80",
    },
    EventType.HOLD_EXPIRED: {
        "user_id": SAMPLE_USER_ID,
        "hold_id": "0d3c9a58-7b1e-4f26-8e4d-6a5b3c2d1e0f",
        "request_id": "video-913",
        "amount": "8.00",
        "balance": "99.80",
        "available": "99.80",
    },
    EventType.REFUND_SUCCEEDED: {
        "user_id": SAMPLE_USER_ID,
        "refund_id": "7e6d5c4b-3a29-4f18-8e07-f6e5d4c3b2a1",
        "transaction_id": _ORDER_ID,
        "amount": "20.00",
        "balance": "79.80",
        "available": "79.80",
    },
    EventType.REFUND_FAILED: {
        "user_id": SAMPLE_USER_ID,
        "refund_id": "2c1b0a9f-8e7d-4c6b-9a59-483726150f4e",
        "transaction_id": _ORDER_ID,
        "amount": "20.00",
        "balance": "99.80",
        "available": "99.80",
    },
    EventType.REDEMPTION_REDEEMED: {
        "user_id": SAMPLE_USER_ID,
        "code": "7KQ2M9XPR4TW8HJD",
        "amount": "50.00",
        "balance": "149.80",
        "available": "149.80",
    },
    EventType.BALANCE_ADJUSTED: {
        "user_id": SAMPLE_USER_ID,
        "entry_id": 8812,
        "amount": "20.00",
        "balance": "119.80",
        "available": "119.80",
    },
    EventType.CREDIT_EXPIRING: {
        "user_id": SAMPLE_USER_ID,
        "lot_id": 3071,
        "category": "granted",
        "amount": "5.00",
        "expires_at": "2026-12-31T23:59:59+08:00",
        "balance": "99.80",
        "available": "99.80",
    },
    EventType.CREDIT_EXPIRED: {
        "user_id": SAMPLE_USER_ID,
        "lot_id": 3071,
        "category": "granted",
        "amount": "5.00",
        "expires_at": "2026-12-08T00:00:00+08:00",
        "balance": "94.80",
        "available": "94.80",
    },
    EventType.SUBSCRIPTION_RENEWED: {
        "user_id": SAMPLE_USER_ID,
        "subscription_id": _SUBSCRIPTION_ID,
        "plan": "pro-monthly",
        "period": 2,
        "amount": "30.00",
        "allowance": "50.00",
        "usage_id": "3e9a1f47-0c2b-4d58-a6e1-9b7c5d3f2a08",
        "current_period_start": "2026-12-08T10:15:00+08:00",
        "current_period_end": "2027-01-08T10:15:00+08:00",
        "balance": "119.80",
        "available": "119.80",
    },
    EventType.SUBSCRIPTION_LAPSED: {
        "user_id": SAMPLE_USER_ID,
        "subscription_id": _SUBSCRIPTION_ID,
        "plan": "pro-monthly",
        "reason": "insufficient_balance",
        "periods": 2,
        "ended_at": "2027-01-08T10:15:00+08:00",
        "balance": "12.40",
        "available": "12.40",
    },
    EventType.LIMIT_REACHED: {
        "user_id": SAMPLE_USER_ID,
        "period": "day",
        "set_by": "person",
        "limit": "20.00",
        "spent": "20.00",
        "period_start": "2026-12-08T00:00:00+08:00",
        "resets_at": "2026-12-09T00:00:00+08:00",
        "balance": "79.80",
        "available": "79.80",
    },
}


def sample_event(
    type_: EventType, *, event_id: uuid.UUID = SAMPLE_EVENT_ID, created_at: datetime = SAMPLE_CREATED_AT
) -> dict[str, Any]:
    """A whole sample event of `type_`, as a receiver reads it."""
    return envelope(event_id, type_, created_at, copy.deepcopy(SAMPLES[type_]))


@dataclass(frozen=True)
class SampleDelivery:
    """What the receiver made of a sample: its status, or why there was none."""

    event_id: uuid.UUID
    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def send_sample(
    url: str, secret: str, type_: EventType, *, now: datetime, post: Post = post_event, timeout: Timeout = TIMEOUT
) -> SampleDelivery:
    """Post a sample event of `type_` to `url`, signed and sent as every delivery is (the same
    headers, timeouts and no redirects), with a new id (a receiver that dedupes takes each test) and
    `now` as its time. Nothing is written: for an integrator testing a receiver."""
    event_id = uuid.uuid4()
    body = _encoded(sample_event(type_, event_id=event_id, created_at=now))
    try:
        with post(
            url,
            data=body,
            headers=_headers(secret, body, str(event_id)),
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as answer:
            return SampleDelivery(event_id, answer.status_code)
    except requests.RequestException as exc:
        return SampleDelivery(event_id, None, without_url_secrets(f"{type(exc).__name__}: {exc}", url))
