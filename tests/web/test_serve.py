"""The production server, `make serve` (ledger/serve.py: granian's WSGI interface), started as the
Makefile starts it: the workers' metrics are counted together, also a worker's that died; one JSON
log line a request with its request id, granian's own lines JSON too; 503, not 500, while the
database is down, and the charge goes through again when it is back."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from ledger import serve
from ledger.db import Database, load_pgserver, make_engine
from ledger.migrations import fresh_database
from ledger.models import BillingAccount
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.invariants import find_breaches
from ledger.services.context import SYSTEM
from ledger.services.people.sign_in import register_user
from tests.helpers import INTERNAL_KEY
from tests.web.test_metrics import TOKEN, figure, free_port, served_by_each_worker

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Served:
    base: str
    process: subprocess.Popen
    log: Path  # standard error: every line of the launcher, granian and the app

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def worker_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"Spawning worker-\d+ with PID: (\d+)", self.log.read_text())]

    def workers_ready(self) -> int:
        return self.log.read_text().count("Started worker-")


def up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=5, headers={"X-Request-ID": "probe"}).status_code in (200, 503)
    except requests.ConnectionError:
        return False


@contextmanager
def make_serve(tmp_path: Path, database_url: str, **environ: str) -> Iterator[Served]:
    """`make serve`'s command on a free port (HOST and PORT in the environment), two workers unless
    `environ` says otherwise; yields once every worker is ready."""
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GRANIAN_WORKERS": "2",
        "LEDGER_ENV": "development",
        "DATABASE_URL": database_url,
        "METRICS_TOKEN": TOKEN,
        "INTERNAL_API_KEY": INTERNAL_KEY,
        "XORPAY_SANDBOX": "0",
        "INSTANCE_PATH": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **environ,
    }
    log, out = tmp_path / "serve.err", tmp_path / "serve.out"
    with log.open("w") as err, out.open("w") as stdout:
        process = subprocess.Popen([sys.executable, "-m", "ledger.serve"], cwd=ROOT, env=env, stdout=stdout, stderr=err)
    served = Served(f"http://127.0.0.1:{port}", process, log)
    workers = int(env["GRANIAN_WORKERS"])
    try:
        for _ in range(300):
            if process.poll() is not None or (served.workers_ready() == workers and up(served.base)):
                break
            time.sleep(0.1)
        assert process.poll() is None and served.workers_ready() == workers, log.read_text()[-3000:]
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert out.read_text() == ""  # everything is on standard error


def test_host_and_port_come_from_the_environment_then_dotenv_then_the_defaults(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("HOST=localhost\nPORT=9000\nGRANIAN_WORKERS=3\n")
    values = serve.settings({"PORT": "9100"}, env_file)
    assert (values["HOST"], values["PORT"]) == ("localhost", "9100")
    assert serve.sizing(values) == {"workers": 3, "blocking_threads": 4, "backpressure": None}
    assert serve.sizing({"GRANIAN_BACKPRESSURE": "64"})["backpressure"] == 64
    assert serve.settings({}, tmp_path / "missing.env") == {}
    assert (serve.HOST, serve.PORT) == ("127.0.0.1", 8000)


@pytest.mark.committed
def test_two_granian_workers_are_counted_together_also_one_that_died(committed, database_url, tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "counter_1.db").write_bytes(b"left by an earlier server")  # emptied at start

    def healthz(_: int) -> int:
        return requests.get(f"{served.base}/healthz", timeout=10, headers={"Connection": "close"}).status_code

    with make_serve(tmp_path, database_url) as served, ThreadPoolExecutor(8) as pool:
        assert not (metrics / "counter_1.db").exists()
        first = served.worker_pids()
        assert len(first) == 2
        assert set(pool.map(healthz, range(40))) == {200}
        # A worker killed: granian starts another, and the files of the dead one still count.
        (metrics / f"gauge_liveall_{first[0]}.db").write_bytes(b"")  # a live gauge of the dead worker
        os.kill(first[0], signal.SIGKILL)
        for _ in range(300):
            if served.workers_ready() == 3 and up(served.base):
                break
            time.sleep(0.1)
        assert (len(served.worker_pids()), served.workers_ready()) == (3, 3)
        assert set(pool.map(healthz, range(40))) == {200}
        text = requests.get(f"{served.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    assert not (metrics / f"gauge_liveall_{first[0]}.db").exists()  # told to prometheus_client
    per_worker = served_by_each_worker(metrics)
    assert len([n for n in per_worker if n > 0]) == 3  # both first workers and the new one served
    probes = sum(1 for line in served.lines() if line.get("request_id") == "probe")
    assert probes >= 2  # at least one at start and one after the respawn
    total = 40 + 40 + probes
    assert figure(text, "ledger_http_requests_total", method="GET", route="/healthz", status="200") == total
    assert sum(per_worker) == total


@pytest.mark.committed
def test_one_json_line_a_request_with_its_request_id(committed, database_url, tmp_path):
    """Also: idle keep-alive connections, more than the workers have threads, do not keep a new
    one waiting (granian's backpressure counts connections: a worker at its limit accepts none)."""
    clients = [requests.Session() for _ in range(10)]
    with make_serve(tmp_path, database_url) as served:
        answers = [
            client.get(f"{served.base}/healthz", headers={"X-Request-ID": f"serve-log-{n}"}, timeout=10)
            for n, client in enumerate(clients)
        ]  # each session keeps its connection open
        made_up = requests.get(f"{served.base}/nowhere", headers={"X-Request-ID": "not an id!"}, timeout=10)
    for client in clients:
        client.close()
    assert [(a.status_code, a.headers["X-Request-ID"]) for a in answers] == [(200, f"serve-log-{n}") for n in range(10)]
    assert made_up.status_code == 404 and re.fullmatch(r"[0-9a-f]{32}", made_up.headers["X-Request-ID"])
    lines = served.lines()  # every line parses as JSON: the launcher's, granian's and the app's
    assert {"time", "level", "logger", "message"} <= set().union(*lines)
    assert {line["logger"] for line in lines} <= {"_granian", "_granian.serve", "ledger.requests"}
    assert any(line["message"].startswith("ledger: 2 workers x 4 threads, backpressure 512 (") for line in lines)
    requests_logged = [line for line in lines if line["logger"] == "ledger.requests" and line["request_id"] != "probe"]
    assert [
        (line["request_id"], line["method"], line["route"], line["path"], line["status"], line["ip"])
        for line in requests_logged
    ] == [(f"serve-log-{n}", "GET", "/healthz", "/healthz", 200, "127.0.0.1") for n in range(10)] + [
        (made_up.headers["X-Request-ID"], "GET", None, "/nowhere", 404, "127.0.0.1")
    ]


def test_a_stopped_database_answers_503_under_granian_and_it_recovers(tmp_path):
    pg = load_pgserver().get_server(tmp_path / "pg", cleanup_mode="delete")  # a server of our own to stop
    url = fresh_database(f"postgresql+psycopg://postgres@/postgres?host={tmp_path / 'pg'}", "outage")
    database = Database(make_engine(url))
    with database.session() as session:
        user = register_user(session, email="a@example.com", password="p" * 10, ctx=SYSTEM)
        adjust_balance(session, user_id=user.id, amount=Decimal("10.00"), memo="test", ctx=SYSTEM)
    database.engine.dispose()  # the check at the end connects afresh, after the restart

    def deduct(request_id: str) -> requests.Response:
        body = {"user_id": str(user.id), "amount": "1.00", "model": "m", "request_id": request_id}
        headers = {"x-internal-token": INTERNAL_KEY, "X-Request-ID": request_id}
        return requests.post(f"{served.base}/api/billing/deduct", json=body, headers=headers, timeout=30)

    try:
        # One worker: each has a pool of its own, and one that did not see the outage would answer its
        # first /healthz after the restart 503 from its dead pooled connection (a charge retries once
        # on a fresh connection, the health check does not): which worker answers is not ours to pick.
        with make_serve(tmp_path, url, GRANIAN_WORKERS="1") as served:
            assert deduct("before").status_code == 200
            pg.stop()
            down = deduct("during")
            assert (down.status_code, down.json()["error"]["code"]) == (503, "database_unavailable")
            assert down.headers["Retry-After"] == "1"
            assert requests.get(f"{served.base}/healthz", timeout=30).status_code == 503
            pg.start()
            assert deduct("after").status_code == 200
            assert requests.get(f"{served.base}/healthz", timeout=30).status_code == 200
        statuses = {
            line["request_id"]: line["status"] for line in served.lines() if line["logger"] == "ledger.requests"
        }
        assert (statuses["before"], statuses["during"], statuses["after"]) == (200, 503, 200)
        with database.session() as session:
            assert session.get(BillingAccount, user.id).balance == Decimal("8.0000")
            assert list(find_breaches(session)) == []
    finally:
        database.engine.dispose()
