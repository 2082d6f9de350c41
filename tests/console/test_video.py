"""The console's video jobs (SPEC 11): hold the quoted maximum, a line of at most 2 running per
person, capture what was produced or release on failure, and nothing stuck when a worker dies."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from ledger.errors import InsufficientBalance, InvalidRequest
from ledger.models import BillingAccount, Hold, UsageLog
from ledger.services.books.holds import expire_holds
from ledger.services.books.invariants import find_breaches
from ledger.services.console.video import line_of, reap_stalled, run_video_job, start_video_job
from ledger.services.context import SYSTEM, Context
from tests.factories import UserFactory
from tests.helpers import count_rows

USER = Context("user")


class Queue:
    """Stands in for the task queue: records the jobs handed to it."""

    def __init__(self) -> None:
        self.handed: list[uuid.UUID] = []

    def __call__(self, job_id: uuid.UUID) -> None:
        self.handed.append(job_id)


def start(session, user, queue, seconds="5", quality="720p", outcome="complete", run_id=None):
    return start_video_job(
        session,
        user_id=user.id,
        raw_params={"quality": quality, "seconds": seconds},
        outcome=outcome,
        run_id=run_id or str(uuid.uuid4()),
        ctx=USER,
        handoff=queue,
    )


def run(session, job, queue):
    return run_video_job(session, job_id=job.id, ctx=SYSTEM, handoff=queue, pause=lambda _s: None)


def figures(session, user) -> tuple[Decimal, Decimal]:
    account = session.get(BillingAccount, user.id, populate_existing=True)
    return account.balance, account.held


def test_a_job_holds_its_quoted_maximum_and_is_handed_to_the_queue(session):
    user, queue = UserFactory(balance="10.00"), Queue()
    job = start(session, user, queue)  # 720p, 5 s at 0.80 = 4.00
    assert (job.status, queue.handed) == ("starting", [job.id])
    assert (job.hold.amount, job.hold.request_id.startswith("console:"), job.hold.model) == (
        Decimal("4.00"),
        True,
        "motion-video-1",
    )
    assert figures(session, user) == (Decimal("10.0000"), Decimal("4.0000"))


@pytest.mark.parametrize(
    ("outcome", "status", "produced", "captured", "balance"),
    [
        ("complete", "done", 5, Decimal("4.00"), Decimal("6.0000")),
        ("short", "done", 2, Decimal("1.60"), Decimal("8.4000")),  # half of 5 s, whole seconds: 2 s at 0.80
        ("fail", "failed", 0, None, Decimal("10.0000")),
    ],
)
def test_the_worker_captures_what_was_produced_or_releases_on_failure(
    session, outcome, status, produced, captured, balance
):
    user, queue = UserFactory(balance="10.00"), Queue()
    job = run(session, start(session, user, queue, outcome=outcome), queue)
    assert (job.status, job.seconds_produced, job.hold.captured_amount) == (status, produced, captured)
    assert job.hold.released_amount == Decimal("4.00") - (captured or 0)
    assert figures(session, user) == (balance, Decimal("0.0000"))
    assert count_rows(session, UsageLog) == (1 if captured else 0)
    assert list(find_breaches(session)) == []


def test_at_most_two_jobs_of_a_person_run_and_the_rest_wait_their_turn(session):
    user, queue = UserFactory(balance="50.00"), Queue()
    jobs = [start(session, user, queue, seconds="2") for _ in range(4)]
    assert queue.handed == [jobs[0].id, jobs[1].id]
    line = line_of(session, user.id)
    assert [j.status for j in reversed(line.jobs)] == ["starting", "starting", "queued", "queued"]
    assert (line.places[jobs[2].id], line.places[jobs[3].id], line.active) == (1, 2, True)
    run(session, jobs[0], queue)
    assert queue.handed[-1] == jobs[2].id  # the first in line takes the free place
    assert line_of(session, user.id).places == {jobs[3].id: 1}
    other, other_queue = UserFactory(balance="10.00"), Queue()
    assert start(session, other, other_queue, seconds="2").status == "starting"  # lines are per person


def test_the_same_form_sent_twice_starts_one_job(session):
    user, queue = UserFactory(balance="10.00"), Queue()
    run_id = str(uuid.uuid4())
    first, again = start(session, user, queue, run_id=run_id), start(session, user, queue, run_id=run_id)
    assert again.id == first.id and count_rows(session, Hold) == 1
    assert figures(session, user) == (Decimal("10.0000"), Decimal("4.0000"))


def test_a_job_the_available_amount_cannot_cover_is_refused_and_writes_nothing(session):
    user, queue = UserFactory(balance="3.99"), Queue()
    with pytest.raises(InsufficientBalance):
        start(session, user, queue)
    with pytest.raises(InvalidRequest):
        start(session, user, queue, outcome="explode")
    with pytest.raises(InvalidRequest):
        start(session, user, queue, seconds="61")
    assert (count_rows(session, Hold), line_of(session, user.id).jobs, queue.handed) == (0, [], [])


def test_a_worker_that_dies_mid_job_leaves_nothing_stuck(session):
    user, queue = UserFactory(balance="10.00"), Queue()
    job = start(session, user, queue)

    def dies(_seconds):
        raise SystemExit("the worker was killed")

    with pytest.raises(SystemExit):
        run_video_job(session, job_id=job.id, ctx=SYSTEM, handoff=queue, pause=dies)
    assert job.status == "running"
    later = start(session, user, queue)  # waits for no one: one place is still free
    past = datetime.now(UTC) - timedelta(seconds=1)
    session.execute(
        update(Hold).where(Hold.id == job.hold_id).values(created_at=past - timedelta(hours=1), expires_at=past)
    )

    assert expire_holds(session, SYSTEM) == 1  # the expiry job: the dead job's money is free again
    assert reap_stalled(session, SYSTEM, handoff=queue) == 1  # and the job says why it ended
    session.refresh(job)
    assert (job.status, job.failure, job.hold.status) == ("failed", "interrupted", "expired")
    assert run(session, job, queue).status == "failed"  # a late worker leaves it alone
    assert figures(session, user) == (Decimal("10.0000"), Decimal("4.0000"))  # only `later` is held
    assert session.scalars(select(Hold.status).where(Hold.id == later.hold_id)).one() == "active"
    assert list(find_breaches(session)) == []


def test_a_job_whose_hold_expired_while_it_waited_in_line_is_not_rendered(session):
    user, queue = UserFactory(balance="10.00"), Queue()
    job = start(session, user, queue)
    soon = datetime.now(UTC) + timedelta(seconds=30)  # less than the render plus its margin
    session.execute(update(Hold).where(Hold.id == job.hold_id).values(expires_at=soon))
    rendered = []
    ended = run_video_job(session, job_id=job.id, ctx=SYSTEM, handoff=queue, pause=rendered.append)
    assert (ended.status, ended.failure, rendered) == ("failed", "expired", [])
    assert figures(session, user) == (Decimal("10.0000"), Decimal("0.0000"))  # its money went back
    assert list(find_breaches(session)) == []


def test_queued_jobs_whose_hold_expired_leave_the_line(session):
    user, queue = UserFactory(balance="20.00"), Queue()
    jobs = [start(session, user, queue, seconds="2") for _ in range(3)]
    past = datetime.now(UTC) - timedelta(seconds=1)
    due = {"created_at": past - timedelta(hours=1), "expires_at": past}
    session.execute(update(Hold).where(Hold.id == jobs[2].hold_id).values(**due))
    assert reap_stalled(session, SYSTEM, handoff=queue) == 1
    session.refresh(jobs[2])
    assert (jobs[2].status, jobs[2].failure) == ("failed", "expired")
    assert line_of(session, user.id).places == {}
