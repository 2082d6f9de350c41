"""Prometheus metrics (SPEC 18), served at GET /metrics to a bearer of METRICS_TOKEN.

Counters are counted where the thing happens (requests in ledger.web.tracing, money in the
services), so a page, an API call, a job and a command count alike; one way each: what an operation
did when its transaction commits (`count_on_commit`, inside the transaction), what it refused when
the refusal leaves it (`counting_refusals`).
Under granian or gunicorn every worker is a process with its own counters: with
PROMETHEUS_MULTIPROC_DIR set (ledger/serve.py and gunicorn.conf.py set it, empty it at start and
tell prometheus_client when a worker exits) prometheus_client writes them to files there and a
scrape adds up every process's. Figures read from the database at scrape time (the job queue's
depth, events waiting) are gauges collected then.
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ledger.db import Database
from ledger.errors import LedgerError

P = ParamSpec("P")
R = TypeVar("R")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Counter("ledger_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "ledger_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CHARGES = Counter(
    "ledger_charges_total", "Charges (single and batch items): charged, replayed, or the refusal's code.", ["outcome"]
)
CHARGED_YUAN = Counter("ledger_charged_yuan_total", "Money charged, in yuan (a float: for graphs, not for the books).")
HOLDS = Counter("ledger_holds_total", "Hold operations: placed, captured, released, expired.", ["action"])
TOPUPS = Counter("ledger_topups_total", "Top-ups credited, by what proved the payment.", ["confirmed_by"])
TOPUP_YUAN = Counter("ledger_topup_yuan_total", "Money topped up, in yuan (a float: for graphs, not for the books).")
REFUNDS = Counter("ledger_refunds_total", "Refunds settled: succeeded or failed.", ["status"])
WEBHOOK_REFUSALS = Counter("ledger_webhook_refusals_total", "XorPay notifies refused, by reason.", ["reason"])


# A label's values must be few: a client may send any method name, and each new one would be a series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def count_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "OTHER"
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)


_ON_COMMIT = "ledger.metrics.on_commit"


def count_on_commit(session: Session, count: Callable[[], None]) -> None:
    """Count when the session's transaction commits: a change that rolls back counts nothing."""
    session.info.setdefault(_ON_COMMIT, []).append(count)


def count_charges(session: Session, outcomes: Iterable[str] | str, yuan: Decimal) -> None:
    """On commit: one charge an outcome (charged, replayed, an item's refusal code; a single charge
    gives its outcome as a string), and the yuan charged. On the hot path: no Counter, no closure."""
    counted = {outcomes: 1} if isinstance(outcomes, str) else collections.Counter(outcomes)
    count_on_commit(session, functools.partial(_count_charges, counted, yuan))


def _count_charges(counted: dict[str, int], yuan: Decimal) -> None:
    for outcome, n in counted.items():  # one write an outcome: a batch of 1,000 is a few
        CHARGES.labels(outcome).inc(n)
    if yuan:
        CHARGED_YUAN.inc(float(yuan))


def counting_refusals(counter: Counter) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count the operation's refusals on `counter`, labelled with the LedgerError's code."""

    def decorate(operation: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(operation)
        def counted(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return operation(*args, **kwargs)
            except LedgerError as refused:
                counter.labels(refused.code).inc()
                raise

        return counted

    return decorate


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for count in session.info.pop(_ON_COMMIT, []):
        count()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_ON_COMMIT, None)


class DatabaseFigures(Collector):
    """Gauges read from the database when scraped: jobs in the task queue by status, events waiting."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("ledger_job_queue_depth", "Jobs in the task queue, by status.", labels=["status"])
        events = GaugeMetricFamily("ledger_events_pending", "Events to the SaaS not delivered yet.")
        up = GaugeMetricFamily("ledger_database_up", "1 when the database answered this scrape, else 0.")
        try:
            with self.database.engine.connect() as connection:
                queue = (
                    "SELECT status::text, count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') GROUP BY 1"
                )
                for status, count in connection.execute(text(queue)):
                    jobs.add_metric([status], count)
                waiting = connection.execute(text("SELECT count(*) FROM events WHERE status = 'pending'")).scalar()
                events.add_metric([], waiting or 0)
        except SQLAlchemyError:  # an outage is when the request figures matter most: still serve them
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield from (up, jobs, events)


class _ThisProcess(Collector):
    """The process's own metrics (the default registry), when there is one process to count."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape(database: Database) -> bytes:
    """The metrics of every process (multiprocess mode) or of this one, with the database's gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseFigures(database))
    return generate_latest(registry)


def serve_from_worker(port: int, host: str = "127.0.0.1") -> None:
    """A job worker's own counters (holds its expiry job expired, top-ups reconcile credited, video
    captures) on http://host:port/metrics, for Prometheus to scrape beside the web server's. On the
    loopback address by default: it has no token, so expose it only to the scraper."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)


def worker_exited(pid: int) -> None:
    """A server worker gone (gunicorn's child_exit, ledger/serve.py for granian): its live gauges are
    dropped (its counters stay counted)."""
    _multiprocess.mark_process_dead(pid)
