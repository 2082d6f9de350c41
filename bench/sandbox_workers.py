"""The XorPay sandbox under several server processes: `gunicorn -w 2 -k gthread --threads 4`.

    .venv/bin/python bench/sandbox_workers.py                       # embedded PostgreSQL, 60 orders
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/sandbox_workers.py

Starts gunicorn on a free port with XORPAY_SANDBOX=1 on a fresh database (migrated to head) and a
fresh instance folder, then counts, over real HTTP, what a second worker sees of what the first
one was told: query2 of new orders (`new` expected), their pay pages (200 expected), paying them
(the pay page's POST) and query2 after paying, whole top-ups through the app (create, pay, the
notify credits, `succeeded`), and a refund of each (`ok`). Every request may land on either worker.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import fresh_database
from ledger.services.payments.xorpay import GatewayError, XorPayClient

ROOT = Path(__file__).resolve().parent.parent
AID, SECRET = "sandbox-aid", "bench-xorpay-secret"
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CHECKS = (  # what is counted: (check, the answer that is right)
    ("query2 new", "new"),
    ("pay page", "200"),
    ("pay", "200"),
    ("query2 after pay", "payed"),
    ("top-up", "succeeded"),
    ("refund", "ok"),
)


class Tally:
    """Answers per check, counted from several threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter = Counter()

    def add(self, check: str, answer: object) -> None:
        with self.lock:
            self.counts[(check, str(answer))] += 1

    def report(self) -> None:
        for check, right in CHECKS:
            answers = {a: n for (c, a), n in self.counts.items() if c == check}
            others = ", ".join(f"{a} {n}" for a, n in sorted(answers.items()) if a != right)
            print(
                f"{check:17} {answers.get(right, 0):4} / {sum(answers.values()):4} {right}"
                + (f"  ({others})" if others else "")
            )


def serve(database_url: str, instance: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LEDGER_ENV": "development",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": instance,
        "SITE_URL": url,
        "XORPAY_SANDBOX": "1",
        "XORPAY_AID": AID,
        "XORPAY_APP_SECRET": SECRET,
        "XORPAY_API_BASE": f"{url}/sandbox/xorpay",
        "XORPAY_NOTIFY_URL": f"{url}/api/payments/webhook",
    }
    args = ["-w", "2", "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}", "wsgi:app"]
    command = [sys.executable, "-m", "gunicorn", *args]
    quiet = subprocess.DEVNULL
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=quiet, stderr=quiet), url  # noqa: S603 - our own


def wait_until_up(url: str) -> None:
    for _ in range(60):
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.5)
    raise SystemExit("gunicorn did not start")


def pay(qr: str) -> str:
    """A buyer opens the pay page and clicks pay (two requests, each to any worker): its HTTP status."""
    buyer = requests.Session()
    page = buyer.get(qr, timeout=15)
    if page.status_code != 200:
        return f"page {page.status_code}"
    return str(buyer.post(qr, data={"csrf_token": CSRF.search(page.text).group(1)}, timeout=15).status_code)


def gateway_at(url: str) -> XorPayClient:
    """A client whose every call is a new connection, that either worker may accept (a kept-alive
    connection would stay with one worker)."""
    http = requests.Session()
    http.headers["Connection"] = "close"
    return XorPayClient(f"{url}/sandbox/xorpay", AID, SECRET, http=http)


def new_orders(url: str, count: int, tally: Tally) -> None:
    """Orders made at the sandbox directly (not the app's): asked about and shown many at a time,
    then paid (a few at a time: paying holds a server thread while the notify takes another),
    then asked about again."""
    orders = [(f"bench-{uuid.uuid4().hex}", ("alipay", "native")[i % 2]) for i in range(count)]

    def create(order: tuple[str, str]) -> str:
        order_id, pay_type = order
        notify_url = f"{url}/api/payments/webhook"
        return (
            gateway_at(url)
            .create(name="bench", pay_type=pay_type, price="9.90", order_id=order_id, notify_url=notify_url, expire=600)
            .qr
        )

    def look(order_id: str, qr: str) -> None:
        tally.add("query2 new", gateway_at(url).query2(order_id))
        tally.add("pay page", requests.get(qr, timeout=15).status_code)

    with ThreadPoolExecutor(8) as pool:
        qrs = list(pool.map(create, orders))
        ids = [order_id for order_id, _ in orders]
        list(pool.map(look, ids * 3, qrs * 3))
    with ThreadPoolExecutor(3) as pool:
        for answer in pool.map(pay, qrs):
            tally.add("pay", answer)
    # Not the app's orders (its webhook answers 404), so XorPay keeps them `payed`.
    for order_id in ids:
        tally.add("query2 after pay", gateway_at(url).query2(order_id))


def top_ups(url: str, count: int, tally: Tally) -> None:
    """Whole top-ups through the app, Alipay and WeChat Pay in turn, then a refund of 1.00 each."""
    person = requests.Session()
    token = CSRF.search(person.get(f"{url}/register", timeout=15).text).group(1)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    person.post(f"{url}/register", data={"email": email, "password": "bench-password", "csrf_token": token})
    person.headers["X-CSRFToken"] = CSRF.search(person.get(f"{url}/", timeout=15).text).group(1)

    def one(i: int) -> None:
        body = {"amount": "20.00", "pay_type": ("alipay", "native")[i % 2]}
        created = person.post(f"{url}/api/payments/create", json=body, timeout=30)
        if created.status_code != 201:
            tally.add("top-up", f"create {created.status_code}")
            return
        order = created.json()
        pay(order["qr"])
        shown = person.get(f"{url}/api/payments/{order['transaction_id']}", timeout=15).json()
        tally.add("top-up", shown["status"])
        if shown["status"] == "succeeded":
            try:
                gateway_at(url).refund(shown["provider_order_id"], "1.00")
                tally.add("refund", "ok")
            except GatewayError as exc:
                tally.add("refund", exc.gateway_status)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--top-ups", type=int, default=20)
    options = parser.parse_args()
    database_url = fresh_database("ledger_bench_sandbox")
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="ledger-sandbox-") as instance:
        server, url = serve(database_url, instance)
        try:
            wait_until_up(url)
            new_orders(url, options.orders, tally)
            top_ups(url, options.top_ups, tally)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    tally.report()


if __name__ == "__main__":
    main()
