"""Background and periodic work on procrastinate (SPEC 17): periodic jobs once per period however many
workers defer them, each job a thin call into services, run by a real worker on committed rows."""

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from procrastinate.periodic import PeriodicDeferrer
from sqlalchemy import func, select, text

from ledger import create_app
from ledger.jobs import job_queue, video_handoff
from ledger.logs import bound_request_id, current_request_id
from ledger.models import (
    AuditLog,
    BillingAccount,
    Event,
    Hold,
    LedgerEntry,
    PaymentTransaction,
    Subscription,
    VideoJob,
)
from ledger.services.backoffice.people import adjust
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.holds import place_hold
from ledger.services.console.video import start_video_job
from ledger.services.context import INTERNAL, SYSTEM
from ledger.services.growth import plans
from tests.helpers import ADMIN, HangingReceiver, WorkerThread, funded_user, pending_order, rows_of, wait_until

pytestmark = pytest.mark.committed


def jobs_in_queue(committed) -> list[tuple[str, str]]:
    with committed.session() as session:
        return [tuple(r) for r in session.execute(text("SELECT task_name, status FROM procrastinate_jobs ORDER BY id"))]


def test_periodic_jobs_hold_expiry_reconcile_event_delivery_and_queue_cleanup(app):
    periodic = {p.task.name: p.cron for p in job_queue(app).app.periodic_registry.periodic_tasks.values()}
    assert periodic == {
        "ledger:expire_holds": "* * * * *",
        "ledger:expire_credits": "* * * * *",
        "ledger:renew_subscriptions": "* * * * *",
        "ledger:reconcile_payments": "*/5 * * * *",
        "ledger:deliver_events": "* * * * * */10",
        "ledger:fail_stalled_deliveries": "* * * * *",
        "ledger:remove_old_jobs": "17 3 * * *",
    }


def test_two_workers_defer_each_periodic_job_once_per_period(app, committed):
    registry = job_queue(app).app.periodic_registry
    queue = job_queue(app).app

    async def two_workers_at_the_same_tick():
        now = time.time()
        deferrers = [PeriodicDeferrer(registry=registry) for _ in range(2)]  # what each worker runs
        async with queue.open_async():
            await asyncio.gather(*(d.defer_jobs(list(d.get_previous_tasks(at=now))) for d in deferrers))

    job_queue(app).close()  # an earlier test of this process may have opened it to defer: one opening at a time
    asyncio.run(two_workers_at_the_same_tick())
    deferred = [task for task, status in jobs_in_queue(committed) if status == "todo"]
    assert sorted(set(deferred)) == sorted(deferred)  # once each, not once per worker
    # The frequent ones are always within their last period; the daily one only some of the day.
    assert {
        "ledger:deliver_events",
        "ledger:expire_holds",
        "ledger:expire_credits",
        "ledger:renew_subscriptions",
        "ledger:reconcile_payments",
    } <= set(deferred)


def test_the_expiry_job_run_by_a_worker_frees_the_money_of_holds_past_due(app, committed):
    user = funded_user(committed, "10.00")
    with committed.session() as session:
        past = datetime.now(UTC) - timedelta(hours=1)
        place_hold(
            session,
            user_id=user.id,
            amount="6.00",
            model="m",
            request_id="job",
            ttl_seconds=60,
            ctx=INTERNAL.at(past),
        )
    job_queue(app).defer("expire_holds", timestamp=int(time.time()))
    job_queue(app).run_worker(app, wait=False, install_signal_handlers=False, listen_notify=False)
    assert ("ledger:expire_holds", "succeeded") in jobs_in_queue(committed)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).held == Decimal("0.0000")
        assert session.query(Hold).one().status == "expired"


def test_the_credit_expiry_job_run_by_a_worker_writes_what_expired(app, committed):
    user = funded_user(committed, "1.00")
    with committed.session() as session:
        past = datetime.now(UTC) - timedelta(hours=1)
        adjust_balance(
            session, user_id=user.id, amount=Decimal("4.00"), memo="gift", ctx=SYSTEM.at(past - timedelta(days=1)),
            expires_at=past,
        )  # fmt: skip
    job_queue(app).defer("expire_credits", timestamp=int(time.time()))
    job_queue(app).run_worker(app, wait=False, install_signal_handlers=False, listen_notify=False)
    assert ("ledger:expire_credits", "succeeded") in jobs_in_queue(committed)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("1.0000")
        assert session.scalar(select(func.count()).where(LedgerEntry.kind == "expiry")) == 1


def test_the_renewal_job_run_by_a_worker_renews_a_subscription_whose_period_ended(app, committed):
    user = funded_user(committed, "100.00")
    started = datetime.now(UTC) - timedelta(days=8)  # a week's period, ended a day ago
    with committed.session() as session:
        plans.create_plan(
            session, ADMIN, code="weekly", name_zh="周卡", name_en="Weekly", price="5.00", period="week",
            allowance="8.00", reason="test",
        )  # fmt: skip
        sub = plans.subscribe(session, INTERNAL.at(started), user.id, "weekly").subscription
    job_queue(app).defer("renew_subscriptions", timestamp=int(time.time()))
    job_queue(app).run_worker(app, wait=False, install_signal_handlers=False, listen_notify=False)
    assert ("ledger:renew_subscriptions", "succeeded") in jobs_in_queue(committed)
    with committed.session() as session:
        renewed = session.get(Subscription, sub.id)
        assert (renewed.status, renewed.periods) == ("active", 2)
        assert renewed.current_period_start == sub.current_period_end  # the next period follows on
        assert session.scalar(select(func.count()).where(Event.type == "subscription.renewed")) == 1


def test_the_reconcile_job_run_by_a_worker_credits_a_paid_order(app, committed, xorpay):
    user = funded_user(committed, "1.00")
    order = pending_order(committed, user, amount="25.00")
    xorpay.query2_answers("payed")
    job_queue(app).defer("reconcile_payments", timestamp=int(time.time()))
    job_queue(app).run_worker(app, wait=False, install_signal_handlers=False, listen_notify=False)
    assert ("ledger:reconcile_payments", "succeeded") in jobs_in_queue(committed)
    with committed.session() as session:
        assert session.get(BillingAccount, user.id).balance == Decimal("26.0000")
        assert session.get(PaymentTransaction, order.id).status == "succeeded"


def test_video_jobs_run_by_a_worker_settle_their_holds_and_start_the_next_in_line(app, committed):
    user = funded_user(committed, "20.00")
    handoff = video_handoff(app)
    with committed.session() as session:
        jobs = [
            start_video_job(
                session,
                user_id=user.id,
                raw_params={"quality": "720p", "seconds": "1"},
                outcome=outcome,
                run_id=str(uuid.uuid4()),
                ctx=INTERNAL,
                handoff=handoff,
            ).id
            for outcome in ("complete", "fail", "short")
        ]
    assert [task for task, _status in jobs_in_queue(committed)] == ["ledger:run_video_job"] * 2  # 2 at a time
    job_queue(app).run_worker(app, wait=False, install_signal_handlers=False, listen_notify=False)
    with committed.session() as session:
        done = {j.id: (j.status, j.seconds_produced) for j in session.query(VideoJob)}
        assert [done[j] for j in jobs] == [("done", 1), ("failed", 0), ("done", 1)]
        account = session.get(BillingAccount, user.id)
        assert (account.balance, account.held) == (Decimal("18.4000"), Decimal("0.0000"))  # two seconds at 0.80
    assert ("ledger:run_video_job", "succeeded") in jobs_in_queue(committed)


def test_a_job_queued_by_a_request_logs_and_audits_under_its_request_id(app, committed, caplog):
    user = funded_user(committed, "20.00")
    with bound_request_id("console-req-9"), committed.session() as session:
        start_video_job(
            session,
            user_id=user.id,
            raw_params={"quality": "720p", "seconds": "1"},
            outcome="complete",
            run_id=str(uuid.uuid4()),
            ctx=INTERNAL,
            handoff=video_handoff(app),
        )
    with committed.session() as session:
        args = session.execute(text("SELECT args FROM procrastinate_jobs")).scalar_one()
    assert args["request_id"] == "console-req-9"
    with caplog.at_level(logging.INFO):
        job_queue(app).run_worker(app, wait=False, install_signal_handlers=False, listen_notify=False)
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Starting job")]
    assert any("request_id='console-req-9'" in line for line in started)  # the worker's own log line
    with committed.session() as session:
        rows = session.execute(
            select(AuditLog.action, AuditLog.request_id).where(
                AuditLog.user_id == user.id, AuditLog.action.startswith("hold.")
            )
        ).all()
    assert sorted(rows) == [("hold.captured", "console-req-9"), ("hold.placed", "console-req-9")]
    assert current_request_id() is None  # unbound again after the job


def test_event_delivery_runs_one_job_at_a_time_on_a_queue_of_its_own(app):
    task = job_queue(app).app.tasks["ledger:deliver_events"]
    assert (task.queue, task.lock, task.queueing_lock) == ("events", "deliver_events", "deliver_events")


def deliveries(committed) -> list[str]:
    return [
        s
        for (s,) in rows_of(
            committed, "SELECT status FROM procrastinate_jobs WHERE task_name = 'ledger:deliver_events' ORDER BY id"
        )
    ]


def test_a_receiver_that_hangs_delays_neither_hold_expiry_nor_reconcile_nor_video_jobs(
    settings, database, committed, xorpay, monkeypatch
):
    """The issue: each delivery job hung on the receiver, and the next one (queued every 10 s) took
    another of the worker's slots, until none was left for the other jobs. Here a worker of two
    slots: once a delivery job hangs on the receiver, a second is queued behind it (as the next
    period does), then the work of the other jobs; it is done while the first still hangs."""
    receiver = HangingReceiver()
    hooked = create_app(replace(settings, EVENTS_URL=receiver.url, EVENTS_SECRET="s" * 32), database)
    monkeypatch.setitem(hooked.extensions, "ledger.xorpay", xorpay.client)
    user = funded_user(committed, "20.00")
    with committed.session() as session:
        for _ in range(6):  # six events to post: many posts' worth of hanging
            adjust(session, ADMIN, user.id, "1.00", debit=False, reason="r")

    worker = WorkerThread(hooked, concurrency=2).start(committed)
    try:
        worker.defer("deliver_events", timestamp=int(time.time()))  # unless the worker's own is waiting
        wait_until(lambda: receiver.posts, what="a delivery job to hang on the receiver")
        worker.defer("deliver_events", timestamp=int(time.time()) + 10)  # the next period's
        # Work for the other jobs, made now (the worker's periodic jobs ran at its start).
        with committed.session() as session:
            hold = place_hold(
                session,
                user_id=user.id,
                amount="6.00",
                model="m",
                request_id="job",
                ttl_seconds=60,
                ctx=INTERNAL.at(datetime.now(UTC) - timedelta(hours=1)),
            ).hold
            video = start_video_job(
                session,
                user_id=user.id,
                raw_params={"quality": "720p", "seconds": "1"},
                outcome="complete",
                run_id=str(uuid.uuid4()),
                ctx=INTERNAL,
                handoff=lambda job_id: worker.defer(
                    "run_video_job", queueing_lock=f"video:{job_id}", job_id=str(job_id)
                ),
            )
        order = pending_order(committed, user, amount="25.00")
        xorpay.query2_answers("payed")
        worker.defer("expire_holds", timestamp=int(time.time()))
        worker.defer("reconcile_payments", timestamp=int(time.time()))

        def done() -> bool:
            with committed.session() as session:
                return (
                    session.get(Hold, hold.id).status == "expired"
                    and session.get(PaymentTransaction, order.id).status == "succeeded"
                    and session.get(VideoJob, video.id).status == "done"
                )

        wait_until(done, seconds=15, what="hold expiry, reconcile and the video job")
        # All the while the first delivery job hangs, and the second waits in the queue, in no slot.
        assert deliveries(committed) == ["doing", "todo"]
        assert not receiver.released.is_set()
    finally:
        receiver.release()
        worker.stop()
        receiver.close()
    with committed.session() as session:
        account = session.get(BillingAccount, user.id)
        assert (account.balance, account.held) == (Decimal("50.2000"), Decimal("0.0000"))  # 20 + 6 + 25 - 0.80


def test_a_delivery_job_left_running_by_a_dead_worker_is_failed_and_the_next_one_runs(app, committed):
    queue = job_queue(app)
    with committed.session() as session, session.begin():  # a worker that died mid-delivery
        dead = session.scalar(
            text(
                "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '5 minutes') RETURNING id"
            )
        )
        left = queue.defer("deliver_events", timestamp=int(time.time()))
        session.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :j"), {"w": dead, "j": left}
        )
    following = queue.defer("deliver_events", timestamp=int(time.time()) + 10)  # held back by the lock until...
    queue.defer("fail_stalled_deliveries", timestamp=int(time.time()))
    queue.run_worker(app, wait=False, install_signal_handlers=False, listen_notify=False)
    assert ("ledger:fail_stalled_deliveries", "succeeded") in jobs_in_queue(committed)
    statuses = dict(
        rows_of(committed, "SELECT id, status FROM procrastinate_jobs WHERE id IN (:a, :b)", a=left, b=following)
    )
    assert statuses == {left: "failed", following: "succeeded"}
