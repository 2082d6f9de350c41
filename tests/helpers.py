"""Helpers shared by the tests: signing in, forms, balances, XorPay stand-ins, threads, images, code batches.

Fixtures live in tests/conftest.py; this module holds plain functions and classes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import func, select, text
from werkzeug import Response

from ledger.jobs import NAMESPACE, job_queue
from ledger.models import Actor, BillingAccount, InviteRelation, LedgerEntry, PaymentTransaction
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.charges import charge_usage
from ledger.services.context import CLOCK, INTERNAL, SYSTEM, XORPAY, Context
from ledger.services.growth.code_batches import create_batch
from ledger.services.payments.webhook import handle_notify
from ledger.services.payments.xorpay import XorPayClient, sign
from ledger.services.people.sign_in import register_user
from tests import factories

INTERNAL_KEY = "test-internal-key"
XORPAY_AID = "test-aid"
XORPAY_SECRET = "test-xorpay-secret"
SHANGHAI = timedelta(hours=8)


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def at(local: str) -> datetime:
    """A Shanghai wall-clock time as an aware UTC instant."""
    return (datetime.fromisoformat(local) - SHANGHAI).replace(tzinfo=UTC)


# --- pages, forms, CSRF ---------------------------------------------------------------------------


def csrf_token_in(page: str, where: str = "the page") -> str:
    """The CSRF token of a rendered page (its <meta name="csrf-token">)."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert match, f"no csrf meta tag on {where}"
    return match.group(1)


class AuthActions:
    """Sign in and out through the real pages, CSRF token included: `auth.login(user)`."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf_token(self, path: str = "/login") -> str:
        return csrf_token_in(self.client.get(path).get_data(as_text=True), where=path)

    def login(self, user_or_email, password: str = factories.PASSWORD):
        email = getattr(user_or_email, "email", user_or_email)
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": self.csrf_token()})

    def logout(self):
        return self.client.post("/logout", data={"csrf_token": self.csrf_token("/")})


def post_form(client, auth, path, page, **data):
    """POST a form to `path` with the CSRF token of `page`, as the browser sends it."""
    return client.post(path, data={"csrf_token": auth.csrf_token(page), **data})


# --- the books ------------------------------------------------------------------------------------


def balance_of(session, user) -> Decimal:
    """A person's balance; `user` is a User or its id."""
    user_id = getattr(user, "id", user)
    return session.scalar(select(BillingAccount.balance).where(BillingAccount.user_id == user_id))


def count_rows(session, model, user=None) -> int:
    """Rows of `model`, all of them or one person's."""
    query = select(func.count()).select_from(model)
    if user is not None:
        query = query.where(model.user_id == user.id)
    return session.scalar(query)


def reward_entries(session) -> list[tuple]:
    """The invite-reward ledger entries as sorted (user id, amount) pairs."""
    rows = session.execute(select(LedgerEntry.user_id, LedgerEntry.amount).where(LedgerEntry.kind == "invite_reward"))
    return sorted((str(u), a) for u, a in rows)


# --- XorPay -------------------------------------------------------------------------------------


def signed_notify(order, *, secret: str = XORPAY_SECRET, **fields: str | None) -> dict[str, str]:
    """The notify XorPay posts once `order` is paid, signed with `secret`; `fields` replace (None: keep)."""
    notify = {
        "aoid": order.provider_order_id,
        "order_id": str(order.id),
        "pay_price": f"{order.amount:.2f}",
        "pay_time": "2026-11-25 20:00:00",
        "more": "",
        "detail": '{"transaction_id": "2026x", "bank_type": "ALIPAY"}',
    }
    notify.update({k: v for k, v in fields.items() if v is not None})
    notify["sign"] = sign(notify["aoid"], notify["order_id"], notify["pay_price"], notify["pay_time"], secret)
    return notify


def settle_by_notify(session, order, settings) -> bool:
    """Pay `order` the way a signed notify does, through handle_notify (True: it credited)."""
    return handle_notify(session, XORPAY.using(settings), signed_notify(order))


SLOW = "X-Test-Slow"  # marks an answer that outlived the client's wait


class FakeXorPay:
    """XorPay as a real HTTP peer (pytest-httpserver), with the answers a test sets."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.client = XorPayClient(httpserver.url_for("/"), XORPAY_AID, XORPAY_SECRET, timeout=(1, 1))
        self.slow_started = 0  # answers that outlive the client's wait (refund_times_out)

    def create_answers(self, body: dict) -> None:
        self.server.expect_request(f"/api/pay/{XORPAY_AID}", method="POST").respond_with_json(body)

    def create_ok(self, aoid: str = "aoid-1", qr: str = "https://qr.alipay.com/bax01", expires_in="1800") -> None:
        self.create_answers({"status": "ok", "aoid": aoid, "expires_in": expires_in, "info": {"qr": qr}})

    def create_ok_each_time(self) -> None:
        """Every create answered ok with an aoid of its own, as XorPay does for a series of orders."""

        def fresh(_request):
            body = {"status": "ok", "aoid": uuid.uuid4().hex, "expires_in": "1800", "info": {"qr": "https://qr.x/1"}}
            return Response(json.dumps(body), content_type="application/json")

        self.server.expect_request(f"/api/pay/{XORPAY_AID}", method="POST").respond_with_handler(fresh)

    def query2_answers(self, status: str) -> None:
        self.server.expect_request(f"/api/query2/{XORPAY_AID}").respond_with_json({"status": status})

    def refund_answers(self, status: str) -> None:
        self.server.expect_request(re.compile(r"/api/refund/.*"), method="POST").respond_with_json({"status": status})

    def refund_times_out(self) -> None:
        """XorPay takes longer than the client waits: the outcome of the refund is unknown. The
        client waits 0.3 s for an answer from here on (not the usual second: a test waits it out)."""
        self.client.timeout = (1, 0.3)

        def slow(_request):
            self.slow_started += 1  # the server answers one request at a time
            time.sleep(0.6)
            return Response('{"status": "ok"}', content_type="application/json", headers={SLOW: "1"})

        self.server.expect_request(re.compile(r"/api/refund/.*"), method="POST").respond_with_handler(slow)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every slow answer is in the server's log: one logged after this test would be
        read by the next test as its own request (the server and its log serve a whole worker)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for _request, answer in self.server.log if answer.headers.get(SLOW)) >= self.slow_started:
                return
            time.sleep(0.02)

    def sent_forms(self) -> list[dict]:
        return [request.form.to_dict() for request, _ in self.server.log]


# --- committed rows and threads (tests marked `committed`) ------------------------------------------


def run_together(n: int, work):
    """Run `work(i)` in n threads released at the same instant; return their results or exceptions."""
    barrier = threading.Barrier(n)

    def task(i):
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:  # collected and asserted on by the caller
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(task, range(n)))


def rows_of(database, sql: str, **params) -> list[tuple]:
    """The rows of a query, read in a transaction of their own (committed rows only)."""
    with database.session() as session:
        return [tuple(row) for row in session.execute(text(sql), params)]


def wait_until(condition, *, seconds: float = 20, what="the condition"):
    """Poll `condition` until it returns something true (returned), at most `seconds`: a bounded
    wait for something another thread or process does, not a clock."""
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"waited {seconds} s for {what() if callable(what) else what}"
        time.sleep(0.05)
    return result


def wait_until_waiting_on_a_lock(engine, *, seconds: float = 20) -> None:
    """Wait until a connection of this database waits on a lock (pg_stat_activity): the other
    thread of a test has reached the lock it is to wait on. A wait for that event, not a sleep."""

    def waiting() -> int:
        with engine.connect() as connection:
            return connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )

    wait_until(waiting, seconds=seconds, what="a transaction waiting on a lock")


class WorkerThread:
    """A procrastinate worker, as `flask jobs worker` runs it (`JobQueue.run_worker_async`, every
    queue), in a thread of its own until `stop`, so that a test can queue jobs while it works:
    `defer` queues through the worker's own connection pool, on its event loop."""

    def __init__(self, flask_app, **options) -> None:
        self.queue = job_queue(flask_app)
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task | None = None
        options = {"install_signal_handlers": False, "fetch_job_polling_interval": 0.2, **options}

        async def work() -> None:
            self.task = asyncio.current_task()
            await self.queue.run_worker_async(flask_app, **options)

        def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):  # stopped
                self.loop.run_until_complete(work())

        self.thread = threading.Thread(target=run, daemon=True)

    def start(self, database) -> WorkerThread:
        self.thread.start()
        wait_until(lambda: rows_of(database, "SELECT id FROM procrastinate_workers"), what="the worker to register")
        return self

    def defer(self, task: str, *, queueing_lock: str | None = None, **kwargs) -> int | None:
        """Queue a job of `task` with the task's own settings (queue, locks), as JobQueue.defer
        does: None when one with the same queueing lock is waiting already."""
        job = self.queue.app.configure_task(f"{NAMESPACE}:{task}", queueing_lock=queueing_lock).defer_async(**kwargs)
        try:
            return asyncio.run_coroutine_threadsafe(job, self.loop).result(timeout=20)
        except AlreadyEnqueued:
            return None

    def stop(self) -> None:
        """Stop as SIGTERM does: the running jobs finish first."""
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker did not stop"
        self.loop.close()


class HangingReceiver:
    """An events receiver (a real HTTP server in a thread) that holds every POST unanswered until
    `release` (at most a minute), then answers 200. `posts` lists the paths it was sent."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.posts: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(self.path)
                receiver.released.wait(60)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass  # the client stopped waiting long ago

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def funded_user(database, balance: str):
    with database.session() as session:
        user = register_user(session, email=f"c{uuid.uuid4().hex[:12]}@example.com", password="p" * 10, ctx=SYSTEM)
        adjust_balance(session, user_id=user.id, amount=Decimal(balance), memo="test", ctx=SYSTEM)
    return user


def pending_order(database, user, amount="50.00"):
    with database.session() as session, session.begin():
        order = PaymentTransaction(
            id=uuid.uuid4(),
            user_id=user.id,
            amount=Decimal(amount),
            status="pending",
            provider_order_id=uuid.uuid4().hex,
            meta={},
            expires_at=datetime.now(UTC) + timedelta(minutes=30),
        )
        session.add(order)
    return order


def invited_pair(database):
    with database.session() as session:
        inviter = register_user(session, email="inviter@example.com", password="p" * 10, ctx=SYSTEM)
        invitee = register_user(
            session, email="invitee@example.com", password="p" * 10, ctx=SYSTEM, invite_code=inviter.invite_code
        )
        relation_id = session.scalar(select(InviteRelation.id))
    return inviter, invitee, relation_id


# --- images ---------------------------------------------------------------------------------------


def image_bytes(fmt="PNG", size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def noise_png(min_bytes: int) -> bytes:
    """A valid PNG of random pixels, at least `min_bytes` long (noise does not compress)."""
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


# The back office's actor in service calls: an admin acting from a test, or from the command line.
ADMIN = Context(Actor.ADMIN).as_admin(None, via="test")
CLI_ADMIN = Context(Actor.ADMIN).as_admin(None, via="cli")


def charge(session, user, amount="1.00", request_id="r-1", model="image-studio-v2", ctx=INTERNAL, **options):
    """A deduct of `user` by a service of the SaaS, through the charge engine (charge_usage)."""
    return charge_usage(session, user_id=user.id, amount=amount, model=model, request_id=request_id, ctx=ctx, **options)


def stop_the_clock(app: Flask, monkeypatch: pytest.MonkeyPatch, at: datetime | None = None) -> datetime:
    """Stop the app's clock (the operations' context clock of every request) at `at`, by default
    in the middle of the current minute; returns the stopped time."""
    stopped_at = at or datetime.now(UTC).replace(second=30)
    monkeypatch.setitem(app.extensions, CLOCK, lambda: stopped_at)
    return stopped_at


# --- redemption codes -----------------------------------------------------------------------------


def make(session, admin, count=3, amount="50.00", expires=None, note="reseller A"):
    """A batch of `count` redemption codes made by `admin` (create_batch): (batch, codes)."""
    return create_batch(
        session,
        admin,
        count=count,
        amount=amount,
        expires=expires,
        note=note,
        reason="for reseller A",
        tz=ZoneInfo("Asia/Shanghai"),
    )


@contextlib.contextmanager
def trickling_peer(pause: float, bytes_: int):
    """An HTTP peer on a free port that sends its status line, then a byte of header every `pause`
    seconds, `bytes_` times: no single read waits long, so only a deadline on the whole call cuts
    it. Yields (port, cut); `cut` holds True once the caller closed the connection on it."""
    listener = socket.create_server(("127.0.0.1", 0))
    cut: list[bool] = []

    def trickle() -> None:
        peer, _ = listener.accept()
        with peer:
            peer.recv(65536)
            try:
                peer.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(bytes_):
                    time.sleep(pause)
                    peer.sendall(b"a")
                peer.sendall(b"\r\nContent-Length: 0\r\n\r\n")
            except OSError:  # the caller's deadline closed the connection
                cut.append(True)

    receiver = threading.Thread(target=trickle, daemon=True)
    receiver.start()
    try:
        yield listener.getsockname()[1], cut
    finally:
        receiver.join(10)
        listener.close()


# --- what pages say -------------------------------------------------------------------------------


def text_of(html: str) -> str:
    """A piece of a page as its reader sees it: tags out, runs of white space as one space."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def kinds_line(page: str) -> str | None:
    """The line under a balance that says what it is made of (SPEC 20), as text; None without one."""
    found = re.search(r'data-testid="balance-kinds">(.*?)</p>', page, re.S)
    return found and re.sub(r"<[^>]+>", "", found.group(1))
