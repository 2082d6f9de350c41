"""/console: prices from the one catalogue, runs charged through charge_usage, replays on resubmit."""

import re
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ledger.models import BillingAccount, UsageLog
from tests.factories import UserFactory


def run_form(auth, model="image-studio-v2", request_id=None, **params):
    return {
        "csrf_token": auth.csrf_token("/console"),
        "model": model,
        "request_id": request_id or str(uuid.uuid4()),
        "action": "run",
        **params,
    }


def test_console_shows_prices_and_a_fresh_request_id(client, auth, session):
    auth.login(UserFactory(balance="10.00"))
    page = client.get("/console").get_data(as_text=True)
    assert "¥10.00" in page and "¥0.20" in page and "¥4.00" in page
    ids = re.findall(r'name="request_id" value="([0-9a-f-]{36})"', page)
    assert len(ids) == 3 and len(set(ids)) == 3


def test_running_a_model_charges_and_shows_result_and_balance(client, auth, session):
    user = UserFactory(balance="10.00")
    auth.login(user)
    response = client.post("/console/run", data=run_form(auth, resolution="2048", images="2"))
    assert response.status_code == 302 and "result=" in response.headers["Location"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "运行完成" in page
    assert "¥1.00" in page and "¥9.00" in page
    assert "分辨率: 2048 × 2048</span>" in page and "张数: 2</span>" in page  # labels, not raw names
    usage = session.scalars(select(UsageLog).where(UsageLog.user_id == user.id)).one()
    assert (usage.amount, usage.model, usage.params) == (
        Decimal("1.00"),
        "image-studio-v2",
        {"resolution": "2048", "images": 2},
    )


def test_resubmitting_the_same_form_charges_once(client, auth, session):
    user = UserFactory(balance="10.00")
    auth.login(user)
    run_id = str(uuid.uuid4())
    form = run_form(auth, request_id=run_id)
    first = client.post("/console/run", data=form)
    second = client.post("/console/run", data=form)
    assert first.headers["Location"] == second.headers["Location"]
    assert session.get(BillingAccount, user.id).balance == Decimal("9.80")
    assert session.scalars(select(UsageLog.request_id)).all() == [f"console:{run_id}"]


def test_insufficient_balance_says_so_and_charges_nothing(client, auth, session):
    user = UserFactory(balance="0.10")
    auth.login(user)
    response = client.post("/console/run", data=run_form(auth), follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "alert-warning" in page and "0.10" in page
    assert session.scalar(select(func.count()).select_from(UsageLog)) == 0


def test_a_malformed_run_id_is_refused_not_run_under_a_new_one(client, auth, session):
    auth.login(UserFactory(balance="10.00"))
    response = client.post("/console/run", data=run_form(auth, request_id="not-a-uuid"), follow_redirects=True)
    assert "请提供形如" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(UsageLog)) == 0


def test_update_price_without_javascript_charges_nothing(client, auth, session):
    user = UserFactory(balance="10.00")
    auth.login(user)
    form = {**run_form(auth, model="motion-video-1", quality="1080p", seconds="4"), "action": "quote"}
    response = client.post("/console/run", data=form, follow_redirects=True)
    assert "¥6.00" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(UsageLog)) == 0


def test_another_persons_result_is_not_shown(client, auth, app, session):
    owner = UserFactory(balance="10.00")
    auth.login(owner)
    location = client.post("/console/run", data=run_form(auth)).headers["Location"]
    auth.logout()
    auth.login(UserFactory())
    assert 'data-testid="run-result"' not in client.get(location).get_data(as_text=True)


# --- video jobs -----------------------------------------------------------------------------------


def video_form(auth, **fields):
    return {
        "csrf_token": auth.csrf_token("/console"),
        "model": "motion-video-1",
        "quality": "720p",
        "seconds": "5",
        "outcome": "complete",
        "request_id": str(uuid.uuid4()),
        **fields,
    }


def test_a_video_starts_as_a_job_and_the_console_shows_its_line(client, auth, session, monkeypatch):
    handed = []
    monkeypatch.setattr("ledger.blueprints.console.pages.video_handoff", lambda _app: handed.append)
    auth.login(UserFactory(balance="10.00"))
    response = client.post("/console/video", data=video_form(auth))
    assert (response.status_code, response.headers["Location"]) == (302, "/console#jobs")
    page = client.get("/console").get_data(as_text=True)
    assert 'data-testid="video-job" data-status="starting"' in page and "¥4.00" in page
    assert '<meta http-equiv="refresh" content="5">' in page  # without JavaScript, a reload shows progress
    panel = client.get("/console/jobs").get_data(as_text=True)
    assert 'id="jobs"' in panel and "<html" not in panel  # the panel alone, for the page's script
    assert 'data-active="true"' in panel and len(handed) == 1


def test_a_video_the_balance_cannot_hold_says_so_with_a_link_to_top_up(client, auth, session, monkeypatch):
    monkeypatch.setattr("ledger.blueprints.console.pages.video_handoff", lambda _app: lambda _job: None)
    auth.login(UserFactory(balance="1.00"))
    response = client.post("/console/video", data=video_form(auth), follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "可用余额（¥1.00）不足以冻结这笔金额。" in page and 'href="/recharge"' in page
    assert "alert-warning" in page
    assert session.scalar(select(func.count()).select_from(UsageLog)) == 0


# --- a first visit, and a balance short of a price (issue 16.4) -------------------------------


def test_at_zero_the_console_says_top_up_first_with_each_models_price(client, auth, session):
    auth.login(UserFactory())
    page = client.get("/console").get_data(as_text=True)
    assert "请先充值：每次运行都从余额中扣费。" in page and 'href="/recharge">先去充值</a>' in page
    assert "Image Studio v2</span> · 每张 ¥0.10 起" in page and "Chat Pro</span> · 每千 Token ¥0.02 起" in page
    client.set_cookie("lang", "en")
    page = client.get("/console").get_data(as_text=True)
    assert "First, top up: every run is charged from your balance." in page
    assert "Motion Video 1</span> · from ¥0.80 per second" in page and ">Top up first</a>" in page


def test_short_of_a_price_the_card_offers_a_top_up_instead_of_the_run(client, auth, session):
    auth.login(UserFactory(balance="0.30"))  # Image Studio's ¥0.20 fits; the video's ¥4.00 held does not
    page = client.get("/console").get_data(as_text=True)
    assert "console-first-step" not in page
    cards = dict(re.findall(r'data-testid="model-([a-z0-9-]+)">(.*?)</form>', page, re.S))
    video, image = cards["motion-video-1"], cards["image-studio-v2"]
    assert re.search(r'value="run" hidden disabled>', video)
    assert re.search(r'<a class="btn btn-primary flex-grow-1" href="/recharge" data-top-up>充值后运行</a>', video)
    assert '<p class="small mb-2" data-short>本次运行的价格超过你的可用余额（¥0.30）。</p>' in video
    assert 'value="run">' in image and "data-top-up hidden" in image and "data-short hidden" in image
    client.set_cookie("lang", "en")
    video = client.get("/console").get_data(as_text=True)
    assert "This run needs more than your available balance (¥0.30)." in video and ">Top up to run</a>" in video


def test_the_chat_tiers_read_as_words_in_both_languages(client, auth, session):
    auth.login(UserFactory(balance="1.00"))
    page = client.get("/console").get_data(as_text=True)
    assert '<option value="long-context">长上下文</option>' in page and ">标准</span> · ¥0.02" in page
    assert "long-context</span>" not in page
    client.set_cookie("lang", "en")
    page = client.get("/console").get_data(as_text=True)
    assert '<option value="long-context">Long context</option>' in page


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_result_with_params_the_console_never_makes_is_shown_as_text_not_simulated(
    client, auth, session, internal_headers, language
):
    # An internal charge of a console model's id: ?result= opens it, and its params are only data.
    user = UserFactory(balance="10.00")
    auth.login(user)
    client.set_cookie("lang", language)
    body = {
        "user_id": str(user.id),
        "amount": "0.10",
        "model": "image-studio-v2",
        "request_id": "api-1",
        "params": {"resolution": "<i>%(x)s</i>", "images": 1_000_000_000},
    }
    usage_id = client.post("/api/billing/deduct", json=body, headers=internal_headers).get_json()["usage_id"]
    response = client.get(f"/console?result={usage_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "resolution: &lt;i&gt;%(x)s&lt;/i&gt;</span>" in page and "images: 1000000000</span>" in page
    assert "sim-tile" not in page and "sim-output" not in page  # not simulated: no billion tiles
