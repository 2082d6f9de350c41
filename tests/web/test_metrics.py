"""GET /metrics (SPEC 18): only with the bearer token; the figures move with traffic; correct when
several gunicorn workers serve (multiprocess mode)."""

import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def with_token(app, monkeypatch):
    monkeypatch.setitem(app.config, "LEDGER", replace(app.config["LEDGER"], METRICS_TOKEN=TOKEN))


def figure(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` of a scrape, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name and ",".join(sorted((match[2] or "").split(","))) == wanted:
            return float(match[3])
    return 0.0


def scrape(client) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"])
def test_metrics_answer_401_without_the_token(client, with_token, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401 and "Bearer <METRICS_TOKEN>" in response.get_data(as_text=True)


def test_the_scheme_may_be_written_in_any_case(client, with_token):
    assert client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_metrics_answer_401_to_everyone_when_no_token_is_set(client):
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_the_figures_move_with_charges_and_requests(client, session, with_token, internal_headers):
    person = UserFactory(balance="1.00")
    before = scrape(client)
    body = {"user_id": str(person.id), "amount": "0.40", "model": "m", "request_id": "m1"}
    assert client.post("/api/billing/deduct", json=body, headers=internal_headers).status_code == 200
    assert client.post("/api/billing/deduct", json=body, headers=internal_headers).status_code == 200  # replay
    body |= {"request_id": "m2", "amount": "0.90"}
    assert client.post("/api/billing/deduct", json=body, headers=internal_headers).status_code == 402
    after = scrape(client)

    def moved(name, **labels):
        return figure(after, name, **labels) - figure(before, name, **labels)

    assert moved("ledger_charges_total", outcome="charged") == 1
    assert moved("ledger_charges_total", outcome="replayed") == 1
    assert moved("ledger_charges_total", outcome="insufficient_balance") == 1
    assert moved("ledger_charged_yuan_total") == pytest.approx(0.40)
    route = {"method": "POST", "route": "/api/billing/deduct"}
    assert moved("ledger_http_requests_total", status="200", **route) == 2
    assert moved("ledger_http_requests_total", status="402", **route) == 1
    assert moved("ledger_http_request_duration_seconds_count", **route) == 3
    assert "ledger_job_queue_depth" in after and "ledger_events_pending" in after
    assert figure(after, "ledger_database_up") == 1


def test_holds_and_batch_items_are_counted_when_their_transaction_commits(
    client, session, with_token, internal_headers
):
    person = UserFactory(balance="1.00")
    before = scrape(client)
    hold = {"user_id": str(person.id), "amount": "0.30", "model": "m", "request_id": "h1"}
    assert client.post("/api/billing/holds", json=hold, headers=internal_headers).status_code == 201
    assert client.post("/api/billing/holds", json=hold, headers=internal_headers).status_code == 200  # replay
    items = [
        {"user_id": str(person.id), "amount": "0.20", "model": "m", "request_id": "b1"},
        {"user_id": str(person.id), "amount": "0.90", "model": "m", "request_id": "b2"},  # 0.50 available
        {"user_id": str(person.id), "amount": "x", "model": "m", "request_id": "b3"},
    ]
    assert (
        client.post("/api/billing/deduct/batch", json={"charges": items}, headers=internal_headers).status_code == 200
    )
    after = scrape(client)

    def moved(name, **labels):
        return figure(after, name, **labels) - figure(before, name, **labels)

    assert (moved("ledger_holds_total", action="placed"), moved("ledger_holds_total", action="replayed")) == (1, 1)
    outcomes = ("charged", "insufficient_balance", "invalid_request", "replayed")
    assert [moved("ledger_charges_total", outcome=o) for o in outcomes] == [1, 1, 1, 0]
    assert moved("ledger_charged_yuan_total") == pytest.approx(0.20)


def test_refusals_before_any_route_runs_are_traced_and_counted_too(client, with_token):
    """CSRF refuses these before the view: they still get an id, a log line and a count."""
    before = scrape(client)
    answer = client.post("/api/codes/redeem", json={"code": "x"}, headers={"X-Request-ID": "no-session-1"})
    assert (answer.status_code, answer.headers["X-Request-ID"]) == (401, "no-session-1")
    answer = client.post("/logout", headers={"X-Request-ID": "no-csrf-2"})
    assert (answer.status_code, answer.headers["X-Request-ID"]) == (400, "no-csrf-2")
    after = scrape(client)
    moved = figure(after, "ledger_http_requests_total", method="POST", route="/logout", status="400") - figure(
        before, "ledger_http_requests_total", method="POST", route="/logout", status="400"
    )
    assert moved == 1


def test_a_made_up_method_is_counted_as_other_not_as_a_new_series(client, with_token):
    for name in ("ZZ0001Q", "ZZ0002Q"):
        client.open("/healthz", method=name)
    text = scrape(client)
    assert "ZZ000" not in text
    assert figure(text, "ledger_http_requests_total", method="OTHER", route="<no route>", status="405") >= 2


def test_a_scrape_during_a_database_outage_still_serves_the_request_figures(app, with_token, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from ledger import metrics

    def unreachable(self):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(metrics.Database, "engine", property(unreachable), raising=False)
    text = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True)
    assert figure(text, "ledger_database_up") == 0 and "ledger_http_requests_total" in text
    assert "ledger_job_queue_depth" not in text


def test_a_hold_expiry_that_rolls_back_is_not_counted(client, session, with_token, internal_headers):
    """The expiry runs inside the charge's transaction; a refused charge rolls it back, uncounted."""
    from sqlalchemy import text as sql

    person = UserFactory(balance="20.00")
    hold = {"user_id": str(person.id), "amount": "15.00", "model": "m", "request_id": "h1"}
    assert client.post("/api/billing/holds", json=hold, headers=internal_headers).status_code == 201
    session.execute(
        sql("UPDATE holds SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'")
    )
    before = scrape(client)
    body = {"user_id": str(person.id), "amount": "500.00", "model": "m", "request_id": "big"}
    assert client.post("/api/billing/deduct", json=body, headers=internal_headers).status_code == 402
    assert figure(scrape(client), "ledger_holds_total", action="expired") == figure(
        before, "ledger_holds_total", action="expired"
    )
    body |= {"amount": "1.00", "request_id": "small"}
    assert client.post("/api/billing/deduct", json=body, headers=internal_headers).status_code == 200
    assert (
        figure(scrape(client), "ledger_holds_total", action="expired")
        == figure(before, "ledger_holds_total", action="expired") + 1
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def served_by_each_worker(directory: Path) -> list[float]:
    """/healthz answers counted in each process's own file (prometheus_client's multiprocess files)."""
    counts = []
    for file in sorted(directory.glob("counter_*.db")):
        for metric in MultiProcessCollector._read_metrics([str(file)]).values():
            counts += [
                s.value
                for s in metric.samples
                if s.name == "ledger_http_requests_total" and ("route", "/healthz") in s.labels  # labels: pairs here
            ]
    return counts


@pytest.mark.committed
def test_two_gunicorn_workers_are_counted_together(committed, database_url, tmp_path):
    port, metrics_dir = free_port(), tmp_path / "metrics"
    env = {
        **os.environ,
        "LEDGER_ENV": "development",
        "DATABASE_URL": database_url,
        "METRICS_TOKEN": TOKEN,
        "XORPAY_SANDBOX": "0",
        "INSTANCE_PATH": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # Each worker is replaced after 20 requests: the answers are spread over several processes,
        # and those that exited must still be counted.
        "GUNICORN_CMD_ARGS": f"--workers 2 --max-requests 20 --bind 127.0.0.1:{port}",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def healthz(_: int) -> int:
        # generous: a worker replaced after 20 requests restarts slowly on a loaded 2-core machine
        return requests.get(f"{base}/healthz", timeout=30, headers={"Connection": "close"}).status_code

    try:
        for _ in range(300):
            try:
                healthz(0)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(healthz, range(80))) == {200}
        text = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
    finally:
        server.terminate()
        server.wait(timeout=30)
    per_worker = served_by_each_worker(metrics_dir)
    assert len([n for n in per_worker if n > 0]) >= 4  # 81 answers, at most 20 a process
    assert (
        figure(text, "ledger_http_requests_total", method="GET", route="/healthz", status="200")
        == 81
        == sum(per_worker)
    )


def test_a_worker_serves_its_own_counters_for_prometheus():
    """What a job worker counts (hold expiry, reconcile) is scraped from the worker itself."""
    from ledger import metrics

    port = free_port()
    metrics.serve_from_worker(port)
    metrics.HOLDS.labels("expired").inc()
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert figure(text, "ledger_holds_total", action="expired") >= 1
