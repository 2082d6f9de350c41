"""Batches of redemption codes (growth.code_batches): made once with distinct codes and audited, bad
input refused on its field; codes and batches disabled once; each batch's CSV and figures."""

from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ledger.errors import CodeNotFound, InvalidRequest
from ledger.models import AuditLog, RedemptionCode
from ledger.services.context import Context
from ledger.services.growth.code_batches import batch_csv, create_batch, disable_batch, disable_code, list_batches
from ledger.services.growth.codes import ALPHABET, redeem, shown
from tests.factories import UserFactory
from tests.helpers import make

SHANGHAI = ZoneInfo("Asia/Shanghai")
PERSON = Context("user", "203.0.113.7", "pytest")


def test_a_batch_has_the_count_of_distinct_codes_of_the_alphabet_and_is_audited(session, admin):
    batch, codes = make(session, admin, count=200, amount="9.90")
    assert len(set(codes)) == 200
    assert all(len(c) == 16 and set(c) <= set(ALPHABET) for c in codes)
    assert not set("01OI") & set("".join(codes))
    stored = session.scalars(select(RedemptionCode).where(RedemptionCode.batch_id == batch.id)).all()
    assert {c.code for c in stored} == set(codes) and {c.amount for c in stored} == {Decimal("9.90")}
    row = session.scalars(select(AuditLog).where(AuditLog.action == "codes.batch_created")).one()
    assert (row.actor, row.user_id) == ("admin", admin.admin_id)
    assert row.details == {
        "admin_id": str(admin.admin_id),
        "via": "web",
        "reason": "for reseller A",
        "batch_id": str(batch.id),
        "count": 200,
        "amount": "9.90",
        "note": "reseller A",
        "expires": None,
        "credit_days": None,
    }


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("count", {"count": "0"}),
        ("count", {"count": "10001"}),
        ("count", {"count": "1.5"}),
        ("amount", {"amount": "5.001"}),
        ("amount", {"amount": "0.00"}),
        ("amount", {"amount": 5}),
        ("amount", {"amount": "-5"}),
        ("expires", {"expires": "2020-01-01"}),
        ("expires", {"expires": "2026-02-30"}),
        ("expires", {"expires": "tomorrow"}),
        ("note", {"note": "x" * 201}),
        ("reason", {"reason": "  "}),
    ],
)
def test_a_batch_refuses_bad_input_naming_the_field(session, admin, field, fields):
    given = {"count": "3", "amount": "5.00", "expires": None, "note": None, "reason": "r", **fields}
    with pytest.raises(InvalidRequest) as refused:
        create_batch(session, admin, tz=SHANGHAI, **given)
    assert refused.value.field == field
    assert session.scalars(select(RedemptionCode)).all() == []


def test_the_most_codes_a_batch_holds_is_ten_thousand(session, admin):
    batch, codes = make(session, admin, count="10000", amount="1.00")
    assert len(set(codes)) == 10_000 == batch.count


def test_a_redeemed_code_cannot_be_disabled_nor_a_batch_twice(session, admin):
    batch, (code,) = make(session, admin, count=1)
    redeem(session, UserFactory().id, code, PERSON)
    with pytest.raises(InvalidRequest, match="Nothing to change"):
        disable_code(session, admin, code, reason="late")
    disable_batch(session, admin, batch.id, reason="done")
    with pytest.raises(InvalidRequest, match="Nothing to change"):
        disable_batch(session, admin, batch.id, reason="again")
    with pytest.raises(CodeNotFound):
        disable_code(session, admin, "AAAA-AAAA-AAAA-AAAA", reason="x")


def test_the_batch_csv_lists_every_code_with_its_amount_expiry_and_status(session, admin):
    batch, codes = make(session, admin, count=3, amount="20.00", expires="2099-12-31")
    redeem(session, UserFactory().id, codes[0], PERSON)
    disable_code(session, admin, codes[1], reason="leaked")
    name, body = batch_csv(session, admin, batch.id, tz=SHANGHAI)
    assert name.startswith("codes_") and name.endswith(f"_{str(batch.id)[:8]}.csv")
    assert body.startswith("\ufeff".encode())
    lines = body.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "code,amount,expires,status" and lines[-1] == ""
    rows = {line.split(",")[0]: line.split(",")[1:] for line in lines[1:-1]}
    assert rows == {
        shown(codes[0]): ["20.00", "2099-12-31", "redeemed"],
        shown(codes[1]): ["20.00", "2099-12-31", "disabled"],
        shown(codes[2]): ["20.00", "2099-12-31", "unused"],
    }
    downloaded = session.scalars(select(AuditLog).where(AuditLog.action == "codes.batch_downloaded")).one()
    assert (downloaded.actor, downloaded.details["admin_id"], downloaded.details["count"]) == (
        "admin",
        str(admin.admin_id),
        3,
    )


def test_batches_are_listed_newest_first_with_what_was_redeemed_and_disabled(session, admin):
    older, codes = make(session, admin, count=3, note="older")
    redeem(session, UserFactory().id, codes[0], PERSON)
    disable_code(session, admin, codes[1], reason="leaked")
    newer, _ = make(session, admin, count=1, amount="5.00", note="newer")
    rows, total = list_batches(session)
    assert total == 2
    figures = {r.batch.id: (r.redeemed, r.disabled, r.redeemed_amount) for r in rows}
    assert figures == {older.id: (1, 1, Decimal("50.00")), newer.id: (0, 0, Decimal(0))}
