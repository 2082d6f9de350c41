"""flask codes create (SPEC 13): the codes on stdout, one per line; audited as an admin via the cli;
a refusal exits 1 with the reason on stderr."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ledger.models import Actor, AuditLog, CodeBatch, CreditLot, RedemptionCode
from ledger.services.context import Context
from ledger.services.growth.codes import normalise, redeem
from tests.factories import UserFactory


def test_codes_create_prints_the_codes_one_per_line_and_audits_the_cli(app, session):
    result = app.test_cli_runner().invoke(
        args=["codes", "create", "--count", "5", "--amount", "20.00", "--expires", "2099-12-31", "--note", "经销商 A"]
    )
    assert result.exit_code == 0, result.output
    printed = result.stdout.splitlines()
    assert len(printed) == 5 and all(re.fullmatch(r"([A-HJ-NP-Z2-9]{4}-){3}[A-HJ-NP-Z2-9]{4}", c) for c in printed)
    batch = session.scalars(select(CodeBatch)).one()
    assert (batch.count, batch.amount, batch.note, batch.created_by) == (5, 20, "经销商 A", None)
    assert batch.expires_at == datetime(2100, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    stored = set(session.scalars(select(RedemptionCode.code).where(RedemptionCode.batch_id == batch.id)))
    assert stored == {normalise(c) for c in printed}
    row = session.scalars(select(AuditLog).where(AuditLog.action == "codes.batch_created")).one()
    assert (row.actor, row.user_id, row.details["via"], row.details["admin_id"]) == ("admin", None, "cli", None)
    assert str(batch.id) in result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--count", "0", "--amount", "20.00"], "from 1 to 10000"),
        (["--count", "10001", "--amount", "20.00"], "from 1 to 10000"),
        (["--count", "3", "--amount", "20.001"], "decimal places"),
        (["--count", "3", "--amount", "20.00", "--expires", "2020-01-01"], "in the past"),
        (["--count", "3", "--amount", "20.00", "--expires", "31/12/2099"], "YYYY-MM-DD"),
        (["--count", "3", "--amount", "20.00", "--credit-days", "0"], "from 1 to 3650"),
        (["--count", "3", "--amount", "20.00", "--credit-days", "7.5"], "from 1 to 3650"),
    ],
)
def test_codes_create_refusals_exit_1_with_the_reason_on_stderr(app, session, args, said):
    result = app.test_cli_runner().invoke(args=["codes", "create", *args])
    assert result.exit_code == 1
    assert result.stdout == "" and said in result.stderr
    assert session.scalars(select(CodeBatch)).all() == []


def test_ledger_verify_is_clean_after_codes_are_made_and_redeemed(app, session):
    runner = app.test_cli_runner()
    printed = runner.invoke(args=["codes", "create", "--count", "2", "--amount", "9.99"]).stdout.split()
    person = UserFactory(balance="1.00")
    assert redeem(session, person.id, printed[0].lower(), Context(Actor.USER)).balance == Decimal("10.99")
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0 and "no breach" in result.stdout


def test_a_code_made_with_credit_days_gives_credit_that_expires_that_long_after_its_redemption(app, session):
    printed = app.test_cli_runner().invoke(
        args=["codes", "create", "--count", "1", "--amount", "5.00", "--credit-days", "30"]
    )
    assert printed.exit_code == 0, printed.output
    assert session.scalars(select(CodeBatch.credit_days)).one() == 30
    person = UserFactory()
    redeemed_at = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)
    redeem(session, person.id, printed.stdout.strip(), Context(Actor.USER).at(redeemed_at))
    lot = session.scalars(select(CreditLot).where(CreditLot.user_id == person.id)).one()
    assert (lot.category, lot.amount, lot.expires_at) == (
        "granted",
        Decimal("5.0000"),
        redeemed_at + timedelta(days=30),
    )
