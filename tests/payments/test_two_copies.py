"""Two copies of Ledger side by side on one machine (`make run`, then `PORT=5001 make run` in
another clone): each one's SITE_URL, sandbox and notify address follow its own PORT, so a person
who tops up through one copy's sandbox is credited on that copy's books, and the other's stay as
they were. Each copy here is `python -m ledger.devserver` (what `make run` starts, its job worker
included) on a free port, with a database and an instance folder of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ledger.config import DEV_INTERNAL_API_KEY
from ledger.migrations import fresh_database
from tests.helpers import csrf_token_in

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_copies(database_url, tmp_path) -> Iterator[list[str]]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    copies, urls = [], []
    for name in ("a", "b"):
        port = free_port()
        env = {
            **os.environ,
            "LEDGER_ENV": "development",
            "PORT": str(port),
            # Empty, as .env.example leaves them: they follow PORT (the environment wins over a .env).
            "SITE_URL": "",
            "XORPAY_NOTIFY_URL": "",
            "XORPAY_API_BASE": "",
            "XORPAY_SANDBOX": "1",
            "DATABASE_URL": fresh_database(database_url, f"ledger_copy_{name}_{worker}"),
            "INSTANCE_PATH": str(tmp_path / name),
            "PASSWORD_HASH": "pbkdf2:sha256:1",
        }
        copies.append(
            subprocess.Popen(
                [sys.executable, "-m", "ledger.devserver"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            wait_for(url)
        yield urls
    finally:
        for copy in copies:
            copy.terminate()
        for copy in copies:
            copy.wait(timeout=60)


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not start within {seconds} s")


def backend(url: str) -> requests.Session:
    api = requests.Session()
    api.headers["x-internal-token"] = DEV_INTERNAL_API_KEY
    return api


def top_up_through_the_sandbox(url: str, email: str, amount: str) -> str:
    """The SaaS makes the person and sends them in with a portal link; they top up and pay on the
    sandbox's page. Returns their user id."""
    user_id = backend(url).post(f"{url}/api/users", json={"email": email}).json()["user_id"]
    link = backend(url).post(f"{url}/api/users/{user_id}/portal", json={"next": "/recharge"}).json()
    browser = requests.Session()
    landed = browser.get(link["url"])
    assert landed.url == f"{url}/recharge"
    token = csrf_token_in(landed.text)
    order = browser.post(f"{url}/api/payments/create", json={"amount": amount}, headers={"X-CSRFToken": token})
    assert order.status_code == 201, order.text
    qr = order.json()["qr"]
    assert qr.startswith(f"{url}/sandbox/xorpay/pay/")  # this copy's own sandbox
    paid = browser.post(qr, data={"csrf_token": csrf_token_in(browser.get(qr).text)})
    assert "HTTP 200 ok" in paid.text  # the notify reached a copy that knew the order: this one
    return user_id


@pytest.mark.committed
def test_two_copies_on_two_ports_each_keep_their_own_payments(two_copies):
    first, second = two_copies
    ada = top_up_through_the_sandbox(first, "ada@example.com", "30.00")
    bo = top_up_through_the_sandbox(second, "bo@example.com", "12.50")
    on_first = backend(first).get(f"{first}/api/users?email=ada@example.com").json()
    on_second = backend(second).get(f"{second}/api/users?email=bo@example.com").json()
    assert (on_first["user_id"], on_first["balance"], on_first["paid"]) == (ada, "30.00", "30.00")
    assert (on_second["user_id"], on_second["balance"], on_second["paid"]) == (bo, "12.50", "12.50")
    # Neither copy heard of the other's person.
    assert backend(first).get(f"{first}/api/users?email=bo@example.com").status_code == 404
    assert backend(second).get(f"{second}/api/users?email=ada@example.com").status_code == 404
