"""/account: profile, time zone, avatar upload, the balance by kind of money, the credit lots and the
ledger with its running balance."""

import io
import re
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import select

from ledger.db import atomic
from ledger.models import AuditLog, LedgerKind
from ledger.services.books.accounts import adjust_balance, credit
from ledger.services.books.charges import charge_usage
from ledger.services.context import INTERNAL, SYSTEM, XORPAY
from ledger.services.growth.code_batches import create_batch
from ledger.services.growth.codes import redeem, shown
from ledger.services.payments.webhook import handle_notify
from tests.factories import InviteFactory, PaymentFactory, UsageFactory, UserFactory
from tests.helpers import (
    ADMIN,
    at,
    broken_crc_png,
    count_rows,
    image_bytes,
    kinds_line,
    noise_png,
    post_form,
    signed_notify,
    stop_the_clock,
    text_of,
)


def test_profile_edit_saves_and_audits(client, auth, session):
    user = UserFactory()
    auth.login(user)
    response = post_form(
        client, auth, "/account", "/account", username="Alice_01", full_name="爱丽丝", website="https://alice.example"
    )
    assert response.status_code == 302
    session.refresh(user)
    assert (user.username, user.full_name, user.website) == ("Alice_01", "爱丽丝", "https://alice.example")
    assert session.scalars(select(AuditLog.action).where(AuditLog.action == "profile.updated")).one()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "x" * 31),
        ("username", "bad name!"),
        ("website", "javascript:alert(1)"),
        ("website", "ftp://x.example"),
        ("website", "https://" + "x" * 200),
        ("full_name", "x" * 101),
    ],
)
def test_profile_refuses_bad_fields_and_writes_nothing(client, auth, session, field, value):
    user = UserFactory()
    auth.login(user)
    data = {"username": "", "full_name": "", "website": "", field: value}
    assert post_form(client, auth, "/account", "/account", **data).status_code == 422
    session.refresh(user)
    assert (user.username, user.full_name, user.website) == (None, None, None)


def test_username_is_unique_whatever_its_case(client, auth, session):
    UserFactory(username="Alice")
    user = UserFactory()
    auth.login(user)
    response = post_form(client, auth, "/account", "/account", username="alice", full_name="", website="")
    assert response.status_code == 422
    session.refresh(user)
    assert user.username is None


@pytest.mark.parametrize("look_alike", ["ａｄｍｉｎ", "ADMIN", "Ａｄｍｉｎ", "admin"])
def test_a_look_alike_of_a_taken_username_is_taken_too(client, auth, session, look_alike):
    """NFKC and case folding: the full-width "ａｄｍｉｎ" is the same name as "admin" (SPEC 19)."""
    UserFactory(username="admin")
    user = UserFactory()
    auth.login(user)
    response = post_form(client, auth, "/account", "/account", username=look_alike, full_name="", website="")
    assert response.status_code == 422 and "用户名已被占用" in response.get_data(as_text=True)
    session.refresh(user)
    assert (user.username, user.username_key) == (None, None)


TAKEN = '<div class="invalid-feedback" id="username-error">该用户名已被占用。</div>'


@pytest.mark.parametrize(
    ("taken", "look_alike"),
    [
        ("admin", "\u0251dmin"),  # Latin small alpha
        ("admin", "adm\u0131n"),  # Latin small dotless i
        ("ace", "\u0430\u0441\u0435"),  # Cyrillic, one script
        ("paypal", "paypa1"),  # digit one
        ("paypa1", "paypal"),
    ],
)
def test_a_confusable_of_a_taken_username_is_refused_and_nothing_is_written(client, auth, session, taken, look_alike):
    """UTS #39's confusables skeleton on top of NFKC and case folding (the issue's examples)."""
    UserFactory(username=taken)
    user = UserFactory()
    auth.login(user)
    audit_rows = count_rows(session, AuditLog)
    response = post_form(client, auth, "/account", "/account", username=look_alike, full_name="Bob", website="")
    assert response.status_code == 422
    assert TAKEN in response.get_data(as_text=True)
    session.refresh(user)
    assert (user.username, user.username_key, user.full_name) == (None, None, None)
    assert count_rows(session, AuditLog) == audit_rows


def test_a_full_width_username_is_kept_in_its_plain_form(client, auth, session):
    user = UserFactory()
    auth.login(user)
    assert (
        post_form(client, auth, "/account", "/account", username="Ｓｔｒａße", full_name="", website="").status_code
        == 302
    )
    session.refresh(user)
    assert (user.username, user.username_key) == ("Straße", "strasse")
    other = UserFactory()
    auth.logout()
    auth.login(other)
    taken = post_form(client, auth, "/account", "/account", username="STRASSE", full_name="", website="")
    assert taken.status_code == 422


@pytest.mark.parametrize(
    "look_alike",
    ["r\u043e\u043etX", "\u0391rootX", "root\u3164X", "root\uffa0X"],  # Cyrillic o, Greek Alpha, Hangul fillers
)
def test_a_name_mixing_alphabets_or_with_invisible_letters_is_refused(client, auth, session, look_alike):
    user = UserFactory()
    auth.login(user)
    refused = post_form(client, auth, "/account", "/account", username=look_alike, full_name="", website="")
    assert refused.status_code == 422 and "用户名请使用同一种文字" in refused.get_data(as_text=True)
    session.refresh(user)
    assert user.username is None


@pytest.mark.parametrize("name", ["张三abc", "たなかTanaka", "김철수kim", "Иван", "Straße_01"])
def test_names_in_one_alphabet_or_latin_with_cjk_are_fine(client, auth, session, name):
    user = UserFactory()
    auth.login(user)
    assert post_form(client, auth, "/account", "/account", username=name, full_name="", website="").status_code == 302


def test_time_zone_choice_moves_day_boundaries(client, auth, session):
    user = UserFactory()
    auth.login(user)
    data = {"username": "", "full_name": "", "website": "", "timezone": "America/Los_Angeles"}
    assert post_form(client, auth, "/account", "/account", **data).status_code == 302
    session.refresh(user)
    assert user.timezone == "America/Los_Angeles"
    # 2026-03-02 03:00 UTC is the 1st in Los Angeles (and the 2nd in Shanghai).
    UsageFactory(user=user, created_at=datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    body = client.get("/api/usage/report?from=2026-03-01&to=2026-03-01").get_json()
    assert body["totals"]["count"] == 1
    assert body["items"][0]["created_at"] == "2026-03-01T19:00:00-08:00"
    bad = post_form(client, auth, "/account", "/account", **{**data, "timezone": "Mars/Olympus"})
    assert bad.status_code == 422


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_avatar_upload_is_reencoded_and_served_with_safe_headers(client, auth, session, fmt):
    user = UserFactory()
    auth.login(user)
    upload = (io.BytesIO(image_bytes(fmt)), f"me.{fmt.lower()}")
    response = client.post(
        "/account/avatar",
        data={"avatar": upload, "csrf_token": auth.csrf_token("/account")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    session.refresh(user)
    served = client.get("/account/avatar")
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert Image.open(io.BytesIO(served.data)).size == (256, 256)


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b"<?php echo 1; ?>", "shell.png"),
        (b"GIF89a" + b"\x00" * 100, "anim.gif"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg"),
        (image_bytes("PNG")[:40], "truncated.png"),
        (image_bytes("BMP"), "bitmap.png"),
        (noise_png(2 * 1024 * 1024 + 1), "huge.png"),  # a real image, one byte too big
        (image_bytes("PNG", size=(5000, 10)), "wide.png"),  # more pixels on a side than an avatar may cost
        (broken_crc_png(), "corrupt.png"),
    ],
)
def test_avatar_upload_refuses_non_images_and_oversized_files(client, auth, session, payload, name):
    user = UserFactory()
    auth.login(user)
    response = client.post(
        "/account/avatar",
        data={"avatar": (io.BytesIO(payload), name), "csrf_token": auth.csrf_token("/account")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    session.refresh(user)
    assert user.avatar is None


def test_account_lists_ledger_entries_with_running_balance(client, auth, session):
    user = UserFactory(balance="10.00")
    charge_usage(session, user_id=user.id, amount="2.50", model="m", request_id="r1", ctx=INTERNAL)
    auth.login(user)
    page = client.get("/account").get_data(as_text=True)
    ledger = page[page.index('data-testid="ledger"') :]
    assert ledger.index("-¥2.50") < ledger.index("+¥10.00")  # newest first
    assert "¥7.50" in ledger


def test_a_person_sets_their_low_balance_warning_and_the_banner_follows_it(client, auth, session):
    user = UserFactory(balance="30.00")
    auth.login(user)
    assert 'data-testid="low-balance"' not in client.get("/").get_data(as_text=True)  # 30.00, site's 10.00
    response = post_form(client, auth, "/account/alert", "/account", low_balance_threshold="２５")
    assert response.status_code == 302
    session.refresh(user)
    assert user.low_balance_threshold == Decimal("25.00")
    page = client.get("/account").get_data(as_text=True)
    assert "你将在可用余额低于 ¥25.00 时收到提醒。" in page and 'value="25.00"' in page
    charge_usage(session, user_id=user.id, amount="6.00", model="m", request_id="r1", ctx=INTERNAL)  # 30 -> 24
    banner = client.get("/usage").get_data(as_text=True)
    assert 'data-testid="low-balance"' in banner and "你的可用余额已低于 ¥25.00。" in banner
    details = session.scalars(select(AuditLog.details).where(AuditLog.action == "profile.low_balance_threshold")).one()
    assert details == {"own": "25.00"}


@pytest.mark.parametrize("typed", ["-1", "abc", "1.005", "100000.01"])
def test_a_bad_warning_amount_is_refused_on_its_field_in_chinese(client, auth, session, typed):
    user = UserFactory()
    auth.login(user)
    response = post_form(client, auth, "/account/alert", "/account", low_balance_threshold=typed)
    assert response.status_code == 422
    assert "请填写 0.00 到 100000.00 之间的金额" in response.get_data(as_text=True)
    session.refresh(user)
    assert user.low_balance_threshold is None


def test_time_zones_are_named_as_people_say_them(client, auth, session):
    auth.login(UserFactory())
    page = client.get("/account").get_data(as_text=True)
    assert "站点默认（北京时间）" in page
    assert "美国（洛杉矶）时间 · America/Los_Angeles" in page
    client.set_cookie("lang", "en")
    page = client.get("/account").get_data(as_text=True)
    assert "Site default (Beijing time)" in page and "United States (Los Angeles) Time · America/Los_Angeles" in page


# --- the balance by kind of money, and the credit lots (SPEC 20) -------------------------------------

NOW = at("2026-12-01 10:00")


def lot_rows(page: str) -> list[str]:
    """The lots table's rows as a wide screen shows them: cells joined by " | ", tags and runs of
    spaces out (without the kind that a phone shows again with the source)."""
    start = page.index('data-testid="lots"')
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    body = re.sub(r'<div class="d-sm-none mb-1">.*?</div>', "", body, flags=re.S)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    return [" | ".join(text_of(cell) for cell in row) for row in cells]


@pytest.fixture
def lots_of_every_kind(session, app, monkeypatch, settings):
    """At NOW: a paid top-up of ¥20.00, an invitation reward of ¥3.00, a redeemed code of ¥8.00 and
    an admin's credit of ¥5.00 expiring at the end of January; then a charge of ¥4.00 (from the
    credit, which expires first). Returns the person, their order and their code."""
    stop_the_clock(app, monkeypatch, NOW)
    ctx = replace(SYSTEM, clock=lambda: NOW)
    user = UserFactory()
    order = PaymentFactory(user=user, amount=Decimal("20.00"))
    handle_notify(session, replace(XORPAY.using(settings), clock=lambda: NOW), signed_notify(order))
    with atomic(session):
        credit(
            session,
            user_id=user.id,
            amount=Decimal("3.00"),
            kind=LedgerKind.INVITE_REWARD,
            ctx=ctx,
            action="invite.rewarded",
            invite_relation_id=InviteFactory(inviter=user).id,
        )
    _batch, (code,) = create_batch(
        session, ADMIN, count=1, amount="8.00", expires=None, note=None, reason="t", tz=ZoneInfo("Asia/Shanghai")
    )
    redeem(session, user.id, code, ctx)
    adjust_balance(
        session, user_id=user.id, amount=Decimal("5.00"), memo="goodwill", ctx=ctx, expires_at=at("2027-01-31 23:59:59")
    )
    charge_usage(
        session,
        user_id=user.id,
        amount="4.00",
        model="m",
        request_id="lots-1",
        ctx=replace(INTERNAL, clock=lambda: NOW),
    )
    return user, order, code


def test_account_says_the_balance_by_kind_and_lists_the_lots_newest_first(client, auth, session, lots_of_every_kind):
    user, order, code = lots_of_every_kind
    auth.login(user)
    page = client.get("/account").get_data(as_text=True)
    assert 'data-testid="balance"><span class="money">¥32.00</span>' in page
    assert kinds_line(page) == "其中充值 ¥20.00、赠送 ¥12.00；¥1.00 于 2027-01-31 到期"
    assert lot_rows(page) == [
        "赠送 | 管理员发放 2026-12-01 10:00 | ¥5.00 | ¥1.00 / ¥5.00 | 2027-01-31 23:59",
        f"赠送 | 兑换码 {shown(code)} 2026-12-01 10:00 | ¥8.00 | ¥8.00 / ¥8.00 | 永不过期",
        "赠送 | 邀请奖励 2026-12-01 10:00 | ¥3.00 | ¥3.00 / ¥3.00 | 永不过期",
        f"充值 | 充值 {order.id} 2026-12-01 10:00 | ¥20.00 | ¥20.00 / ¥20.00 | 永不过期",
    ]
    assert f'href="/recharge/{order.id}">{order.id}</a>' in page  # the order of a paid lot
    assert "goodwill" not in page  # an admin's memo stays in the back office


def test_account_lots_in_english(client, auth, session, lots_of_every_kind):
    user, order, code = lots_of_every_kind
    auth.login(user)
    client.set_cookie("lang", "en")
    page = client.get("/account").get_data(as_text=True)
    assert kinds_line(page) == "Of which ¥20.00 paid, ¥12.00 given; ¥1.00 expires on 2027-01-31"
    assert lot_rows(page) == [
        "Given money | Admin credit 2026-12-01 10:00 | ¥5.00 | ¥1.00 / ¥5.00 | 2027-01-31 23:59",
        f"Given money | Redemption code {shown(code)} 2026-12-01 10:00 | ¥8.00 | ¥8.00 / ¥8.00 | Never",
        "Given money | Invitation reward 2026-12-01 10:00 | ¥3.00 | ¥3.00 / ¥3.00 | Never",
        f"Paid money | Top-up {order.id} 2026-12-01 10:00 | ¥20.00 | ¥20.00 / ¥20.00 | Never",
    ]
    assert '<h2 class="h6 mb-1">Credit lots</h2>' in page


def test_a_lot_past_its_expiry_says_so(client, auth, session, app, monkeypatch):
    user = UserFactory()
    adjust_balance(
        session,
        user_id=user.id,
        amount=Decimal("5.00"),
        memo="gift",
        ctx=replace(SYSTEM, clock=lambda: NOW),
        expires_at=at("2026-12-01 12:00"),
    )
    auth.login(user)
    stop_the_clock(app, monkeypatch, at("2026-12-01 12:00"))
    page = client.get("/account").get_data(as_text=True)
    assert lot_rows(page)[0].endswith("| 已于 2026-12-01 12:00 过期")
    assert 'data-testid="balance-kinds"' not in page  # nothing left to break down


def test_account_shows_no_one_elses_lots(client, auth, session):
    other = UserFactory(balance="7.00")
    adjust_balance(session, user_id=other.id, amount=Decimal("9.00"), memo="theirs", ctx=SYSTEM)
    user = UserFactory()
    auth.login(user)
    page = client.get("/account").get_data(as_text=True)
    assert 'data-testid="lots"' not in page and "还没有入账：充值、奖励和兑换码会列在这里。" in page
    adjust_balance(session, user_id=user.id, amount=Decimal("2.00"), memo="mine", ctx=SYSTEM)
    page = client.get("/account").get_data(as_text=True)
    assert [row.split(" | ")[2] for row in lot_rows(page)] == ["¥2.00"]
    assert "¥7.00" not in page and "¥9.00" not in page
