"""/account: profile, time zone, avatar upload and the ledger with its running balance."""

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import select

from ledger.models import AuditLog
from ledger.services.books.charges import charge_usage
from ledger.services.context import INTERNAL
from tests.factories import UsageFactory, UserFactory
from tests.helpers import broken_crc_png, count_rows, image_bytes, noise_png, post_form


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
    user = UserFactory(balance="20.00")
    auth.login(user)
    assert 'data-testid="low-balance"' not in client.get("/").get_data(as_text=True)  # 20.00, site's 10.00
    response = post_form(client, auth, "/account/alert", "/account", low_balance_threshold="２５")
    assert response.status_code == 302
    session.refresh(user)
    assert user.low_balance_threshold == Decimal("25.00")
    page = client.get("/account").get_data(as_text=True)
    assert "你将在可用余额低于 ¥25.00 时收到提醒。" in page and 'value="25.00"' in page
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
