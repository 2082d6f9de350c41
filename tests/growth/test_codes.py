"""Redemption codes (SPEC 14): each redeemed once, as typed; used, expired, disabled and unknown codes
refused with their reasons; 10 unknown codes an hour and then 429."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ledger.errors import (
    AccountDisabled,
    CodeDisabled,
    CodeExpired,
    CodeNotFound,
    CodeUsed,
    TooManyCodeTries,
    UserNotFound,
)
from ledger.models import AuditLog, Event, LedgerEntry, RedemptionCode
from ledger.services.books.invariants import find_breaches
from ledger.services.context import Context
from ledger.services.growth.code_batches import disable_batch, disable_code
from ledger.services.growth.codes import find_code, normalise, redeem, shown
from tests.factories import UserFactory
from tests.helpers import balance_of, make

SHANGHAI = ZoneInfo("Asia/Shanghai")
PERSON = Context("user", "203.0.113.7", "pytest")


def today() -> str:
    return datetime.now(SHANGHAI).date().isoformat()


@pytest.mark.parametrize("typed", ["{}", "{lower}", "  {dashed}  ", "{spaced}", "{fullwidth}", "{lower_dashed}"])
def test_a_code_is_matched_without_spaces_dashes_or_case(session, admin, typed):
    _batch, (code,) = make(session, admin, count=1)
    forms = {
        "lower": code.lower(),
        "dashed": shown(code),
        "spaced": " ".join(shown(code).split("-")),
        "fullwidth": shown(code).translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}),
        "lower_dashed": shown(code).lower().replace("-", " - "),
    }
    person = UserFactory(balance="12.00")
    done = redeem(session, person.id, typed.format(code, **forms), PERSON)
    assert (done.code, done.amount, done.balance) == (code, Decimal("50.00"), Decimal("62.00"))
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.redemption_code == code)).one()
    assert (entry.kind, entry.amount, entry.user_id) == ("redemption", Decimal("50.00"), person.id)
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "code.redeemed")).one()
    assert (audit.user_id, audit.details["code"], audit.details["amount"]) == (person.id, code, "50.00")
    assert list(find_breaches(session)) == []


@pytest.mark.parametrize("typed", ["", "ABCD", "ABCD-EFGH-JKLM-NPQ0", "A" * 17, "ß" * 16, None, 12, ["x"]])
def test_what_cannot_be_a_code_is_unknown(session, typed):
    person = UserFactory()
    assert normalise(typed) is None
    with pytest.raises(CodeNotFound):
        redeem(session, person.id, typed, PERSON)


def test_a_code_is_redeemed_once(session, admin):
    _batch, (code,) = make(session, admin, count=1)
    first, second = UserFactory(), UserFactory()
    redeem(session, first.id, code, PERSON)
    for person in (first, second):
        with pytest.raises(CodeUsed):
            redeem(session, person.id, code, PERSON)
    assert (balance_of(session, first), balance_of(session, second)) == (Decimal("50.00"), 0)
    assert find_code(session, code, now=datetime.now(UTC)).status == "redeemed"
    told = session.scalars(select(Event).where(Event.user_id.in_([first.id, second.id]))).all()
    assert [(e.type, e.data) for e in told] == [
        (
            "redemption.redeemed",
            {"user_id": str(first.id), "code": code, "amount": "50.00", "balance": "50.00", "available": "50.00"},
        )
    ]


def test_a_code_can_be_redeemed_until_the_end_of_its_last_day_in_the_site_time_zone(session, admin):
    last = datetime.now(SHANGHAI).date()
    _batch, (early, late) = make(session, admin, count=2, expires=last.isoformat())
    person = UserFactory()
    end_of_day = datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=SHANGHAI)
    assert redeem(session, person.id, early, PERSON.at(end_of_day)).amount == Decimal("50.00")
    with pytest.raises(CodeExpired):
        redeem(session, person.id, late, PERSON.at(end_of_day + timedelta(seconds=1)))
    assert balance_of(session, person) == Decimal("50.00")


def test_a_disabled_code_and_every_code_of_a_disabled_batch_are_refused(session, admin):
    batch, (one, other) = make(session, admin, count=2)
    person = UserFactory()
    disable_code(session, admin, shown(one).lower(), reason="leaked")
    with pytest.raises(CodeDisabled):
        redeem(session, person.id, one, PERSON)
    assert disable_batch(session, admin, batch.id, reason="reseller gone") == 2
    with pytest.raises(CodeDisabled):
        redeem(session, person.id, other, PERSON)
    assert balance_of(session, person) == 0
    actions = session.scalars(select(AuditLog.action).where(AuditLog.action.like("codes.%")).order_by(AuditLog.id))
    assert list(actions) == ["codes.batch_created", "codes.code_disabled", "codes.batch_disabled"]


def test_after_ten_unknown_codes_in_an_hour_every_redemption_is_429_until_the_hour_has_passed(session, admin):
    _batch, (code,) = make(session, admin, count=1)
    person = UserFactory()
    for i in range(10):
        with pytest.raises(CodeNotFound):
            redeem(session, person.id, f"WRONG-{i}", PERSON)
    with pytest.raises(TooManyCodeTries):
        redeem(session, person.id, code, PERSON)  # even a good code
    with pytest.raises(TooManyCodeTries):
        redeem(session, person.id, code, PERSON.at(datetime.now(SHANGHAI) + timedelta(minutes=59)))
    assert balance_of(session, person) == 0
    assert redeem(session, person.id, code, PERSON.at(datetime.now(SHANGHAI) + timedelta(minutes=61))).amount
    refused = session.scalars(select(AuditLog).where(AuditLog.action == "code.refused").order_by(AuditLog.id)).all()
    assert [r.details["reason"] for r in refused] == ["unknown"] * 10  # a 429 writes nothing
    assert refused[0].details["code"] == "WRONG-0"
    other = UserFactory()  # the limit is a person's own
    with pytest.raises(CodeNotFound):
        redeem(session, other.id, "WRONG", PERSON)


def test_used_expired_and_disabled_codes_do_not_count_as_unknown(session, admin):
    _batch, codes = make(session, admin, count=4, expires=today())
    used, expired, disabled, good = codes
    disable_code(session, admin, disabled, reason="leaked")
    redeem(session, UserFactory().id, used, PERSON)
    person = UserFactory()
    tomorrow = datetime.now(SHANGHAI) + timedelta(days=1)
    for _ in range(4):
        for code, refusal in ((used, CodeUsed), (disabled, CodeDisabled)):
            with pytest.raises(refusal):
                redeem(session, person.id, code, PERSON)
        with pytest.raises(CodeExpired):
            redeem(session, person.id, expired, PERSON.at(tomorrow))
    for i in range(9):
        with pytest.raises(CodeNotFound):
            redeem(session, person.id, f"WRONG-{i}", PERSON)
    assert redeem(session, person.id, good, PERSON).amount == Decimal("50.00")
    reasons = session.scalars(select(AuditLog.details["reason"].astext).where(AuditLog.action == "code.refused"))
    assert sorted(set(reasons)) == ["disabled", "expired", "unknown", "used"]


def test_a_disabled_person_cannot_redeem(session, admin):
    _batch, (code,) = make(session, admin, count=1)
    person = UserFactory(disabled_at=datetime.now(SHANGHAI))
    with pytest.raises(AccountDisabled) as refused:
        redeem(session, person.id, code, PERSON)
    assert refused.value.status == 403
    assert session.get(RedemptionCode, code, populate_existing=True).redeemed_by is None


def test_redeeming_for_an_unknown_person_is_refused(session, admin):
    with pytest.raises(UserNotFound):
        redeem(session, uuid.uuid4(), "AAAA-AAAA-AAAA-AAAA", PERSON)
    assert session.scalars(select(AuditLog).where(AuditLog.action == "code.refused")).all() == []
