"""The console's video jobs (SPEC 11): "Motion Video 1" runs as a job through the hold services.

Starting a job holds the quoted maximum and puts the job in the person's line, in one
transaction. At most AT_ONCE of a person's jobs run at a time: `dispatch` hands the next ones to
the task queue (through `handoff`, so that this module knows no queue). The worker's job
(`run_video_job`) simulates a few seconds of generation, then, in one transaction, captures the
price of the seconds produced (the rest goes back) or releases everything if the job failed.
A job whose worker died is reaped once its hold has expired (`reap_stalled`); nothing stays
"running" for ever and no money stays on hold.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import validation
from ledger.db import atomic, lock
from ledger.errors import HoldSettled, InvalidRequest
from ledger.i18n import N_
from ledger.models import BillingAccount, Hold, HoldStatus, VideoJob, VideoJobStatus
from ledger.services.books.accounts import ChargeRequest
from ledger.services.books.holds import capture, release, set_aside
from ledger.services.console.pricing import Quote, quote
from ledger.services.context import Context

MODEL = "motion-video-1"
AT_ONCE = 2  # a person's jobs running at the same time; the others wait in line
HOLD_TTL = 15 * 60  # seconds: far longer than a job runs; a dead worker's hold expires after it
WORK_PER_VIDEO_SECOND = 0.2  # seconds of (simulated) work per second of video: a 5 s video takes 1 s
RESTART_AFTER = timedelta(minutes=2)  # a job handed over that long ago and not started is handed over again
RENDER_MARGIN = timedelta(minutes=1)  # a job starts only if its hold outlasts the render by this much
OUTCOMES = ("complete", "short", "fail")  # the simulation: all the seconds, half of them, or a failure
RECENT = 10

Handoff = Callable[[uuid.UUID], None]  # gives a job to the task queue


@dataclass(frozen=True)
class Line:
    """A person's recent video jobs, newest first, and each queued job's place in line (1 = next)."""

    jobs: list[VideoJob]
    places: dict[uuid.UUID, int]

    @property
    def active(self) -> bool:
        return any(job.status.is_active for job in self.jobs)


def start_video_job(
    session: Session,
    *,
    user_id: uuid.UUID,
    raw_params: Mapping[str, object],
    outcome: object,
    run_id: object,
    ctx: Context,
    handoff: Handoff,
) -> VideoJob:
    """Hold the quoted maximum of a video and queue its job, then start it if one of the person's
    AT_ONCE places is free. `run_id` (a UUID) comes with the page's form: a resubmitted form
    answers the same job. Raises InvalidRequest, InsufficientBalance (the available amount cannot
    cover the quote), RequestIdConflict."""
    run = validation.uuid_of(run_id, "request_id")
    if outcome not in OUTCOMES:
        raise InvalidRequest(N_("Choose one of: %(choices)s."), field="outcome", choices=", ".join(OUTCOMES))
    priced = quote(MODEL, raw_params)
    request = ChargeRequest(user_id, priced.amount, MODEL, f"console:{run}", dict(priced.params))
    with atomic(session):
        held = set_aside(session, request, ttl=HOLD_TTL, ctx=ctx)
        job = session.scalar(select(VideoJob).where(VideoJob.hold_id == held.hold.id)) if held.replayed else None
        if job is None:
            job = VideoJob(
                id=uuid.uuid4(),
                user_id=user_id,
                hold_id=held.hold.id,
                quality=str(priced.params["quality"]),
                seconds=int(priced.params["seconds"]),
                outcome=str(outcome),
                status=VideoJobStatus.QUEUED,
                created_at=held.hold.created_at,
            )
            session.add(job)
    dispatch(session, user_id, ctx, handoff=handoff)
    return job


def dispatch(session: Session, user_id: uuid.UUID, ctx: Context, *, handoff: Handoff) -> list[uuid.UUID]:
    """Hand the person's next jobs in line to the queue while fewer than AT_ONCE are under way.

    The person's billing account row is the line's lock: two dispatches cannot both fill the
    same free place."""
    with atomic(session):
        lock(session, BillingAccount, BillingAccount.user_id == user_id)
        mine = select(func.count()).where(
            VideoJob.user_id == user_id, VideoJob.status.in_([VideoJobStatus.STARTING, VideoJobStatus.RUNNING])
        )
        free = AT_ONCE - (session.scalar(mine) or 0)
        starting = list(
            session.scalars(
                select(VideoJob)
                .where(VideoJob.user_id == user_id, VideoJob.status == VideoJobStatus.QUEUED)
                .order_by(VideoJob.created_at, VideoJob.id)
                .limit(max(free, 0))
            )
        )
        for job in starting:
            job.status = VideoJobStatus.STARTING
            job.started_at = ctx.now()  # handed over; reset when the worker starts it
    for job in starting:  # after the commit: the worker finds the job starting
        handoff(job.id)
    return [job.id for job in starting]


def run_video_job(
    session: Session,
    *,
    job_id: object,
    ctx: Context,
    handoff: Handoff,
    pause: Callable[[float], None] = time.sleep,
) -> VideoJob | None:
    """The worker's job: run the (simulated) generation, then settle its hold in the transaction
    that finishes the job. A job that is not starting (already run, or reaped) is left alone.
    Then the person's next job in line is started."""
    wanted = validation.uuid_of(job_id, "job_id")
    with atomic(session):
        job = lock(session, VideoJob, VideoJob.id == wanted)
        if job is None or job.status is not VideoJobStatus.STARTING:
            return job
        if not _outlasts_the_render(job, ctx.now()):  # it waited in line too long: its money goes back, unrendered
            _give_back(session, job, ctx)
        else:
            job.status, job.started_at = VideoJobStatus.RUNNING, ctx.now()
    if job.status is not VideoJobStatus.RUNNING:
        dispatch(session, job.user_id, ctx, handoff=handoff)
        return job
    pause(job.seconds * WORK_PER_VIDEO_SECOND)  # no transaction is open while the video "renders"
    produced = {"complete": job.seconds, "short": max(1, job.seconds // 2), "fail": 0}[job.outcome]
    with atomic(session):
        job = lock(session, VideoJob, VideoJob.id == wanted)
        assert job is not None
        if job.status is VideoJobStatus.RUNNING:  # not reaped meanwhile
            _settle(session, job, produced, ctx)
    dispatch(session, job.user_id, ctx, handoff=handoff)
    return job


def _outlasts_the_render(job: VideoJob, now: datetime) -> bool:
    """Will the job's hold still be active when the render is done (with a minute to spare)? Then
    a running job's hold expires only if its worker died, and the reaper can tell."""
    render = timedelta(seconds=job.seconds * WORK_PER_VIDEO_SECOND) + RENDER_MARGIN
    return job.hold.status is HoldStatus.ACTIVE and job.hold.expires_at > now + render


def _give_back(session: Session, job: VideoJob, ctx: Context) -> None:
    """Fail a job that will not run (its hold is expiring or gone): whatever is still held returns."""
    with contextlib.suppress(HoldSettled):  # already expired: the money is back already
        release(session, job.hold_id, ctx=ctx)
    job.status, job.failure, job.finished_at = VideoJobStatus.FAILED, "expired", ctx.now()


def _settle(session: Session, job: VideoJob, produced: int, ctx: Context) -> None:
    try:
        if produced:
            capture(session, job.hold_id, price_of(job, produced).amount, ctx=ctx)
        else:
            release(session, job.hold_id, ctx=ctx)
    except HoldSettled:  # its hold expired first (the worker hung past the margin): nothing is charged
        job.status, job.failure = VideoJobStatus.FAILED, "expired"
    else:
        job.status = VideoJobStatus.DONE if produced else VideoJobStatus.FAILED
        job.seconds_produced, job.failure = produced, None if produced else "simulated"
    job.finished_at = ctx.now()


def price_of(job: VideoJob, seconds: int) -> Quote:
    """What `seconds` of this job's video cost (its quality, the catalogue's price)."""
    return quote(MODEL, {"quality": job.quality, "seconds": str(seconds)})


def reap_stalled(session: Session, ctx: Context, *, handoff: Handoff) -> int:
    """For the periodic job: jobs whose hold is gone (expired: the worker died while it ran, or the
    job waited in line longer than its hold lasts) fail, interrupted or expired; jobs handed over
    but never started are handed over again; then each person concerned gets their next jobs
    started. Returns how many jobs it failed."""
    now = ctx.now()
    with atomic(session):
        stalled = list(
            session.scalars(
                select(VideoJob)
                .join(Hold, Hold.id == VideoJob.hold_id)
                .where(
                    VideoJob.status.in_([VideoJobStatus.QUEUED, VideoJobStatus.STARTING, VideoJobStatus.RUNNING]),
                    (Hold.status != HoldStatus.ACTIVE) | (Hold.expires_at <= now),
                )
                .with_for_update(of=VideoJob, skip_locked=True)
            )
        )
        for job in stalled:
            failure = "interrupted" if job.status is VideoJobStatus.RUNNING else "expired"
            job.status, job.failure, job.finished_at = VideoJobStatus.FAILED, failure, now
        forgotten = list(
            session.scalars(
                select(VideoJob.id).where(
                    VideoJob.status == VideoJobStatus.STARTING, VideoJob.started_at < now - RESTART_AFTER
                )
            )
        )
        waiting = set(session.scalars(select(VideoJob.user_id).where(VideoJob.status == VideoJobStatus.QUEUED)))
    for job_id in forgotten:
        handoff(job_id)
    for user_id in {job.user_id for job in stalled} | waiting:
        dispatch(session, user_id, ctx, handoff=handoff)
    return len(stalled)


def line_of(session: Session, user_id: uuid.UUID, *, limit: int = RECENT) -> Line:
    """The person's recent jobs, and where each queued one stands in their line."""
    jobs = list(
        session.scalars(
            select(VideoJob)
            .where(VideoJob.user_id == user_id)
            .order_by(VideoJob.created_at.desc(), VideoJob.id.desc())
            .limit(limit)
        )
    )
    queued = session.scalars(
        select(VideoJob.id)
        .where(VideoJob.user_id == user_id, VideoJob.status == VideoJobStatus.QUEUED)
        .order_by(VideoJob.created_at, VideoJob.id)
    ).all()
    return Line(jobs, {job_id: place for place, job_id in enumerate(queued, start=1)})
