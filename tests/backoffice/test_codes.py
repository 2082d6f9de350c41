"""/admin/codes (SPEC 13, 14): admins only; a batch confirmed with its total, made, listed and
downloaded; a batch or one code disabled, each with a reason and an audit row."""

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from ledger.models import AuditLog, CodeBatch, RedemptionCode
from ledger.services.books.invariants import find_breaches
from ledger.services.context import Context
from ledger.services.growth.code_batches import create_batch
from ledger.services.growth.codes import redeem, shown
from tests.factories import UserFactory
from tests.helpers import CLI_ADMIN, post_form

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def batch(session):
    made, codes = create_batch(
        session, CLI_ADMIN, count=3, amount="20.00", expires="2099-12-31", note="经销商 A", reason="t", tz=SHANGHAI
    )
    return made, codes


def paths(batch_id, code):
    return [
        "/admin/codes",
        f"/admin/codes?code={code}",
        f"/admin/codes/batches/{batch_id}",
        f"/admin/codes/batches/{batch_id}/csv",
    ]


def test_the_codes_pages_do_not_exist_for_anyone_but_admins(client, auth, session, batch):
    made, codes = batch
    posts = ["/admin/codes", f"/admin/codes/batches/{made.id}/disable", f"/admin/codes/{codes[0]}/disable"]
    for signed_in in (False, True):
        if signed_in:
            auth.login(UserFactory())
        for path in paths(made.id, codes[0]):
            assert client.get(path).status_code == 404, path
        for path in posts:
            fields = {"count": "1", "amount": "1.00", "reason": "x", "confirmed": "yes"}
            token_page = "/" if signed_in else "/login"
            assert post_form(client, auth, path, token_page, **fields).status_code == 404, path
    assert session.scalar(select(func.count()).select_from(CodeBatch)) == 1


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_codes_page_answers_and_the_tab_is_there(client, admin_user, session, batch, language):
    client.set_cookie("lang", language)
    made, codes = batch
    for path in paths(made.id, shown(codes[0]).lower()):
        assert client.get(path).status_code == 200, path
    page = client.get("/admin/codes").get_data(as_text=True)
    assert 'href="/admin/codes"' in page and ("兑换码" if language == "zh" else "Codes") in page
    assert "经销商 A" in page and "2099-12-31" in page
    assert shown(codes[0]) in client.get(f"/admin/codes?code={codes[0].lower()}").get_data(as_text=True)
    missing = client.get("/admin/codes?code=NOPE").get_data(as_text=True)
    assert 'data-testid="code-missing"' in missing


def test_a_batch_is_confirmed_with_its_total_then_made_and_audited(client, auth, admin_user, session):
    fields = {"count": "3", "amount": "20.00", "expires": "", "note": "reseller B", "reason": "first order"}
    client.set_cookie("lang", "en")
    shown_first = post_form(client, auth, "/admin/codes", "/admin/codes", **fields)
    assert shown_first.status_code == 200
    assert "3 codes of ¥20.00, total ¥60.00" in shown_first.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(CodeBatch)) == 0  # nothing yet
    done = post_form(client, auth, "/admin/codes", "/admin/codes", **fields, confirmed="yes")
    made = session.scalars(select(CodeBatch)).one()
    assert done.status_code == 302 and done.headers["Location"] == f"/admin/codes/batches/{made.id}"
    assert session.scalar(select(func.count()).where(RedemptionCode.batch_id == made.id)) == 3
    row = session.scalars(select(AuditLog).where(AuditLog.action == "codes.batch_created")).one()
    assert (row.actor, row.details["admin_id"], row.details["reason"]) == ("admin", str(admin_user.id), "first order")


def test_a_batch_may_give_credit_that_lasts_some_days_after_each_redemption(client, auth, admin_user, session):
    fields = {"count": "2", "amount": "5.00", "credit_days": "30", "reason": "a campaign"}
    client.set_cookie("lang", "en")
    shown = post_form(client, auth, "/admin/codes", "/admin/codes", **fields).get_data(as_text=True)
    assert "Each code&#39;s credit expires 30 days after its redemption." in shown
    post_form(client, auth, "/admin/codes", "/admin/codes", **fields, confirmed="yes")
    assert session.scalars(select(CodeBatch.credit_days)).one() == 30


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"count": "10001", "amount": "20.00", "reason": "r"}, "1 to 10000"),
        ({"count": "3", "amount": "20.001", "reason": "r"}, "decimal places"),
        ({"count": "3", "amount": "20.00", "expires": "2020-01-01", "reason": "r"}, "in the past"),
        ({"count": "3", "amount": "20.00", "reason": ""}, "Say why"),
        ({"count": "3", "amount": "20.00", "credit_days": "0", "reason": "r"}, "from 1 to 3650"),
    ],
)
def test_a_bad_batch_is_refused_on_the_confirmation_page(client, auth, admin_user, session, fields, said):
    client.set_cookie("lang", "en")
    refused = post_form(client, auth, "/admin/codes", "/admin/codes", **fields, confirmed="yes")
    assert refused.status_code == 422 and said in refused.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(CodeBatch)) == 0


def test_the_csv_download_is_every_code_with_a_bom_and_is_audited(client, admin_user, session, batch):
    made, codes = batch
    response = client.get(f"/admin/codes/batches/{made.id}/csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="codes_')
    assert response.data.startswith("\ufeff".encode())
    lines = response.data.decode("utf-8-sig").splitlines()
    assert lines[0] == "code,amount,expires,status"
    assert sorted(lines[1:]) == sorted(f"{shown(c)},20.00,2099-12-31,unused" for c in codes)
    row = session.scalars(select(AuditLog).where(AuditLog.action == "codes.batch_downloaded")).one()
    assert row.details["admin_id"] == str(admin_user.id)


def test_disabling_a_batch_is_confirmed_then_done_and_its_codes_are_refused(client, auth, admin_user, session, batch):
    made, codes = batch
    page = f"/admin/codes/batches/{made.id}"
    redeem(session, UserFactory().id, codes[0], Context("user"))
    client.set_cookie("lang", "en")
    shown_first = post_form(client, auth, f"{page}/disable", page, reason="reseller gone")
    assert "2 codes not yet redeemed can no longer be redeemed." in shown_first.get_data(as_text=True)
    assert post_form(client, auth, f"{page}/disable", page, reason="reseller gone", confirmed="yes").status_code == 302
    assert session.get(CodeBatch, made.id, populate_existing=True).disabled_at is not None
    again = post_form(client, auth, f"{page}/disable", page, reason="again", confirmed="yes")
    assert again.status_code == 422
    row = session.scalars(select(AuditLog).where(AuditLog.action == "codes.batch_disabled")).one()
    assert (row.details["reason"], row.details["unredeemed"]) == ("reseller gone", 2)
    assert list(find_breaches(session)) == []


def test_one_code_is_looked_up_and_disabled(client, auth, admin_user, session, batch):
    _made, codes = batch
    typed = shown(codes[1]).lower()
    page = f"/admin/codes?code={typed}"
    assert 'data-testid="disable-code"' in client.get(page).get_data(as_text=True)
    done = post_form(client, auth, f"/admin/codes/{typed}/disable", page, reason="leaked", confirmed="yes")
    assert done.status_code == 302
    assert session.get(RedemptionCode, codes[1], populate_existing=True).disabled_at is not None
    after = client.get(page).get_data(as_text=True)
    assert 'data-status="disabled"' in after and 'data-testid="disable-code"' not in after
    unknown = post_form(client, auth, "/admin/codes/NOPE/disable", page, reason="x", confirmed="yes")
    assert unknown.status_code == 404
