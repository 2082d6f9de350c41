"""Background and periodic work (SPEC 17) on procrastinate: a task queue in the app's own
PostgreSQL (the embedded one too), no broker to add. Each job is a thin call into services.

Workers: `flask --app wsgi jobs worker` (any number, on any hosts), each on every queue. Periodic
jobs are deferred by every worker and run once per period: procrastinate keeps one job per (task,
period) in the database. The web process defers jobs through `JobQueue.defer`.

Event delivery waits on the SaaS's receiver, so it is kept from delaying the rest: its own queue
(`events`), one delivery job at a time across all workers (a procrastinate `lock`: a worker does
not fetch a job whose lock is held, so the next one waits in the queue, not in a worker's slot),
and a bounded run (services.events.deliver_due). It takes at most one of a worker's slots.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import procrastinate
from flask import Flask
from procrastinate import builtin_tasks
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ledger.db import get_database
from ledger.logs import bound_request_id, current_request_id
from ledger.services.books.expiry import expire_credits
from ledger.services.books.holds import expire_holds
from ledger.services.console import video
from ledger.services.context import SYSTEM, Context, app_clock
from ledger.services.events import deliver_due
from ledger.services.growth.plans import renew_due
from ledger.services.payments.settlement import reconcile
from ledger.services.payments.webhook import forget_old_refusals

tasks = procrastinate.Blueprint()
NAMESPACE = "ledger"
EVENTS_QUEUE = "events"


@contextmanager
def _session(context: procrastinate.JobContext) -> Iterator[tuple[Flask, Session, Context]]:
    """The worker's Flask app (its settings, gateway and database), a session for one job, and the
    job's operation context (the system, on the app's clock)."""
    app: Flask = context.additional_context["flask_app"]
    with app.app_context(), get_database(app).session() as session:
        yield app, session, replace(SYSTEM, clock=app_clock(app.extensions), settings=app.config["LEDGER"])


@tasks.periodic(cron="* * * * *", periodic_id="every-minute")
@tasks.task(name="expire_holds", pass_context=True, queueing_lock="expire_holds")
def expire_holds_job(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    """Every minute: write the expiry of the holds past due, freeing their money (SPEC 11), and
    fail the video jobs whose worker died (their hold expired)."""
    with _session(context) as (app, session, ctx):
        expired = expire_holds(session, ctx)
        reaped = video.reap_stalled(session, ctx, handoff=video_handoff(app))
    return {"expired": expired, "reaped": reaped}


@tasks.periodic(cron="* * * * *", periodic_id="every-minute")
@tasks.task(name="expire_credits", pass_context=True, queueing_lock="expire_credits")
def expire_credits_job(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    """Every minute: write the expiry of the credit lots past due (SPEC 20), and the credit.expiring
    events of the lots entering their last days."""
    with _session(context) as (_app, session, ctx):
        run = expire_credits(session, ctx)
    return {"accounts": run.accounts, "notices": run.notices}


@tasks.periodic(cron="* * * * *", periodic_id="every-minute")
@tasks.task(name="renew_subscriptions", pass_context=True, queueing_lock="renew_subscriptions")
def renew_subscriptions_job(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    """Every minute: renew each subscription whose period has ended, or let it lapse (SPEC 21). Two
    runs at once take each subscription once (services.growth.plans.renew_due locks SKIP LOCKED)."""
    with _session(context) as (_app, session, ctx):
        run = renew_due(session, ctx)
    return {"renewed": run.renewed, "lapsed": run.lapsed}


@tasks.task(name="run_video_job", pass_context=True)
def run_video_job(context: procrastinate.JobContext, job_id: str, request_id: str | None = None) -> None:
    """A console video job (services.console.video): render, then capture what it produced or release.
    It logs and audits under the id of the request that queued it."""
    with bound_request_id(request_id), _session(context) as (app, session, ctx):
        video.run_video_job(session, job_id=job_id, ctx=ctx, handoff=video_handoff(app))


def video_handoff(app: Flask) -> video.Handoff:
    """How the video service gives a job to the queue: once, whoever asks (a queueing lock)."""
    return lambda job_id: job_queue(app).defer(
        "run_video_job", queueing_lock=f"video:{job_id}", job_id=str(job_id), request_id=current_request_id()
    )


@tasks.periodic(cron="*/5 * * * *", periodic_id="every-5-minutes")
@tasks.task(name="reconcile_payments", pass_context=True, queueing_lock="reconcile_payments")
def reconcile_payments_job(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    """Every 5 minutes: ask XorPay about pending orders, as `flask payments reconcile` does (SPEC 7)."""
    with _session(context) as (app, session, ctx):
        report = reconcile(session, ctx, app.extensions["ledger.xorpay"])
    return {"checked": report.checked, "credited": report.credited, "expired": report.expired}


@tasks.periodic(cron="* * * * * */10", periodic_id="every-10-seconds")  # croniter: a 6th field is seconds
@tasks.task(
    name="deliver_events", pass_context=True, queue=EVENTS_QUEUE, lock="deliver_events", queueing_lock="deliver_events"
)
def deliver_events_job(context: procrastinate.JobContext, timestamp: int) -> dict[str, int]:
    """Every 10 seconds: post the events that are due to EVENTS_URL (SPEC 16); nothing when it is
    empty. One such job runs at a time and each ends within about 30 seconds (see the module)."""
    with _session(context) as (app, session, ctx):
        settings = app.config["LEDGER"]
        done = deliver_due(session, ctx, url=settings.EVENTS_URL, secret=settings.EVENTS_SECRET)
    return {"delivered": done.delivered, "failed": done.failed, "abandoned": done.abandoned}


@tasks.periodic(cron="* * * * *", periodic_id="every-minute")
@tasks.task(name="fail_stalled_deliveries", pass_context=True, queueing_lock="fail_stalled_deliveries")
async def fail_stalled_deliveries_job(context: procrastinate.JobContext, timestamp: int) -> int:
    """Every minute: mark failed the delivery jobs left running by a worker that died (killed, or
    its host lost: no heartbeat for 30 seconds), whose lock would otherwise keep every later
    delivery job waiting. Their events were leased, so they are simply due again."""
    manager = context.app.job_manager
    stalled = list(await manager.get_stalled_jobs(task_name=f"{NAMESPACE}:deliver_events"))
    for job in stalled:
        await manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)
    return len(stalled)


@tasks.periodic(cron="17 3 * * *", periodic_id="daily")
@tasks.task(name="remove_old_jobs", pass_context=True, queueing_lock="remove_old_jobs")
async def remove_old_jobs_job(context: procrastinate.JobContext, timestamp: int) -> None:
    """Daily: forget the queue's finished jobs older than 3 days (periodic jobs add a few thousand a
    day), and the counts of refused notifies older than 30 days."""
    await builtin_tasks.remove_old_jobs(context, max_hours=72, remove_failed=True)
    await asyncio.to_thread(_forget_old_refusals, context)


def _forget_old_refusals(context: procrastinate.JobContext) -> None:
    with _session(context) as (_app, session, _ctx):
        forget_old_refusals(session)


def conninfo(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL (procrastinate speaks psycopg directly)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class JobQueue:
    """The process's procrastinate App: procrastinate binds tasks to one App, so there is one per
    process, on one database (every Flask app of the process shares it; tests make several).
    Deferring opens it on first use in each process (after a fork, say) and keeps it open; a
    worker opens it (asynchronously) and closes it itself."""

    _process: JobQueue | None = None
    _guard = threading.Lock()

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
        self.app.add_tasks_from(tasks, namespace=NAMESPACE)
        self._opened = self._working = False
        self._lock = threading.Lock()

    @classmethod
    def of_process(cls, database_url: str) -> JobQueue:
        with cls._guard:
            info = conninfo(database_url)
            if cls._process is None:
                cls._process = cls(info)
            elif cls._process.conninfo != info:
                raise RuntimeError("one task-queue database per process: this one already uses another")
            return cls._process

    def defer(self, task: str, *, queueing_lock: str | None = None, **kwargs: Any) -> int | None:
        """Queue a job of `task` (its name in this module); returns the job's id, or None when a
        job with the same queueing lock is already waiting."""
        with self._lock:
            if not self._opened and not self._working:
                self.app.open()
                self._opened = True
        configured = self.app.configure_task(f"{NAMESPACE}:{task}", queueing_lock=queueing_lock)
        try:
            return configured.defer(**kwargs)
        except procrastinate.exceptions.AlreadyEnqueued:
            return None

    def run_worker(self, flask_app: Flask, **options: Any) -> None:
        """Run a worker on every queue until it is stopped (or, with wait=False, until the queues
        are empty). Jobs that defer jobs do it through the worker's own opening of the app."""
        asyncio.run(self.run_worker_async(flask_app, **options))

    async def run_worker_async(self, flask_app: Flask, **options: Any) -> None:
        """`run_worker` in the running event loop; cancelling it stops the worker as SIGTERM does
        (its running jobs finish first)."""
        self.close()
        self._working = True
        try:
            async with self.app.open_async():
                await self.app.run_worker_async(additional_context={"flask_app": flask_app}, **options)
        finally:
            self._working = False

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self.app.close()
                self._opened = False


def job_queue(app: Flask) -> JobQueue:
    """The task queue of `app`'s database (made on first use: an app that defers nothing needs none)."""
    if "ledger.jobs" not in app.extensions:
        url = get_database(app).engine.url.render_as_string(hide_password=False)
        app.extensions["ledger.jobs"] = JobQueue.of_process(url)
    return app.extensions["ledger.jobs"]
