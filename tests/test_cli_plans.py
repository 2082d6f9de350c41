"""flask plans list / create / renew (SPEC 21): plans made from the server's console (audited as an
admin via the cli), listed, and renewals run by cron where no worker runs."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from ledger.models import AuditLog, Plan, Subscription
from ledger.services.context import INTERNAL
from ledger.services.growth import plans
from tests.factories import UserFactory

PRO = ["plans", "create", "pro-monthly", "--name-zh", "专业版", "--name-en", "Pro", "--price", "30.00"]


def test_plans_create_makes_a_plan_on_sale_and_audits_the_cli(app, session):
    result = app.test_cli_runner().invoke(
        args=[*PRO, "--period", "month", "--allowance", "50.00", "--reason", "launch"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "plan pro-monthly: 30.00 a month for 50.00 of allowance\n"
    plan = session.scalars(select(Plan)).one()
    assert (plan.price, plan.allowance, plan.period, plan.active) == (
        Decimal("30.0000"),
        Decimal("50.0000"),
        "month",
        True,
    )
    row = session.scalars(select(AuditLog).where(AuditLog.action == "plans.created")).one()
    assert (row.actor, row.details["via"], row.details["reason"]) == ("admin", "cli", "launch")


def test_plans_create_refusals_exit_1_with_the_reason_on_stderr(app, session):
    runner = app.test_cli_runner()
    refused = runner.invoke(args=[*PRO, "--period", "month", "--allowance", "0"])
    assert refused.exit_code == 1 and "greater than zero" in refused.stderr and refused.stdout == ""
    bad_code = runner.invoke(args=["plans", "create", "Pro", "--name-zh", "a", "--name-en", "a", "--price", "1",
                                   "--period", "week", "--allowance", "1"])  # fmt: skip
    assert bad_code.exit_code == 1 and "lowercase letters" in bad_code.stderr
    assert runner.invoke(args=[*PRO, "--period", "year", "--allowance", "5"]).exit_code == 2  # not a choice
    assert session.scalars(select(Plan)).all() == []


def test_plans_list_prints_each_plan_with_its_subscribers(app, session):
    runner = app.test_cli_runner()
    runner.invoke(args=[*PRO, "--period", "month", "--allowance", "50.00"])
    plans.subscribe(session, INTERNAL, UserFactory(balance="100.00").id, "pro-monthly")
    listed = runner.invoke(args=["plans", "list"])
    assert listed.exit_code == 0
    assert listed.stdout == "pro-monthly\t30.00/month\tallowance 50.00\t1 subscriber(s)\t专业版 / Pro\n"


def test_plans_renew_renews_what_is_due_for_a_deployment_without_a_worker(app, session):
    runner = app.test_cli_runner()
    runner.invoke(args=[*PRO, "--period", "week", "--allowance", "50.00"])
    person = UserFactory(balance="100.00")
    sub = plans.subscribe(session, INTERNAL.at(datetime.now(UTC) - timedelta(days=8)), person.id, "pro-monthly")
    result = runner.invoke(args=["plans", "renew"])
    assert result.exit_code == 0 and result.stdout == "renewed 1, lapsed 0\n"
    assert session.get(Subscription, sub.subscription.id, populate_existing=True).periods == 2
