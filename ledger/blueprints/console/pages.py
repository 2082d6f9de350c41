"""`/console`: pick a model, see its price, run it; a run is charged through `charge_usage`, a
video is a job (a hold for its quoted maximum, a line, a worker: services.console.video)."""

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from wtforms import HiddenField

from ledger.db import get_session
from ledger.i18n import N_
from ledger.jobs import video_handoff
from ledger.services.books.accounts import get_available, get_balance, own_usage
from ledger.services.console.pricing import MODELS, console_run, offers, run_model
from ledger.services.console.video import MODEL as VIDEO_MODEL
from ledger.services.console.video import line_of, start_video_job
from ledger.web.context import now, request_context
from ledger.web.parsing import TextForm, flash_errors, submit

bp = Blueprint("console", __name__)
# What the video form offers to simulate (services.console.video.OUTCOMES).
OUTCOME_LABELS = {
    "complete": N_("Completes"),
    "short": N_("Stops halfway (half is charged)"),
    "fail": N_("Fails (nothing is charged)"),
}


class VideoForm(TextForm):
    """Motion Video 1 as a job. Its parameters are read by the price catalogue, which knows them."""

    request_id = HiddenField()  # a fresh id per page view: the same form submitted twice starts one job
    outcome = HiddenField()  # what the simulation does: complete, short or fail


class RunForm(TextForm):
    """One model's card. Its parameters are read by the price catalogue, which knows them."""

    model = HiddenField()
    request_id = HiddenField()  # a fresh id per page view: the same form submitted twice charges once
    action = HiddenField()  # "quote" (update the price without JavaScript) or "run"


@bp.get("/console")
@login_required
def console() -> Any:
    session, selected = get_session(), request.args.get("model")
    result = own_usage(session, user_id=current_user.id, usage_id=request.args.get("result"))
    selected = selected if selected in MODELS else None  # the model whose values the query carries
    return render_template(
        "console/console.html",
        offers=offers(selected, request.args),
        selected=selected,
        result=result,
        run=console_run(result.model, result.params) if result else None,
        balance=get_balance(session, current_user.id),
        available=get_available(session, current_user.id, now()),
        line=line_of(session, current_user.id),
        outcomes=OUTCOME_LABELS,
    )


@bp.get("/console/jobs")
@login_required
def video_jobs() -> Any:
    """The video jobs panel alone: what the page's script fetches to show their progress live."""
    return render_template("console/_video_jobs.html", line=line_of(get_session(), current_user.id))


@bp.post("/console/video")
@login_required
def start_video() -> Any:
    form = VideoForm()
    job = submit(
        form,
        lambda: start_video_job(
            get_session(),
            user_id=current_user.id,
            raw_params=request.form,
            outcome=form.outcome.data,
            run_id=form.request_id.data,
            ctx=request_context(),
            handoff=video_handoff(current_app._get_current_object()),  # type: ignore[attr-defined]
        ),
    )
    if job is None:
        flash_errors(form, "insufficient" if form.error and form.error.code == "insufficient_balance" else "danger")
        return redirect(url_for("console.console", model=VIDEO_MODEL, **_chosen(VIDEO_MODEL)))
    return redirect(url_for("console.console", _anchor="jobs"))


@bp.post("/console/run")
@login_required
def run() -> Any:
    form = RunForm()
    if form.action.data == "quote":  # "update price" without JavaScript: nothing is charged
        return redirect(url_for("console.console", model=form.model.data, **_chosen(form.model.data)))
    outcome = submit(
        form,
        lambda: run_model(
            get_session(),
            user_id=current_user.id,
            model_id=form.model.data,
            raw_params=request.form,
            run_id=form.request_id.data,
            ctx=request_context(),
        ),
    )
    if outcome is None:  # said on the console, after a redirect: a reload does not post the run again
        flash_errors(form, "insufficient" if form.error and form.error.code == "insufficient_balance" else "danger")
        return redirect(url_for("console.console", model=form.model.data, **_chosen(form.model.data)))
    _priced, charge = outcome
    if charge.replayed:
        flash(_("This run was already charged; showing its result."), "info")
    return redirect(url_for("console.console", result=str(charge.usage.id)))


def _chosen(model_id: str | None) -> dict[str, str]:
    """The parameters of `model_id` as the form sent them, for the page's query string."""
    model = MODELS.get(model_id or "")
    return {p.name: request.form.get(p.name, "") for p in model.params} if model else {}
