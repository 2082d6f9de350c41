"""flask ledger verify / payments reconcile / demo seed / users create / events replay / jobs worker /
admin adjust."""

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ledger.models import BillingAccount, CreditLot, Event, User
from ledger.services.backoffice.people import adjust
from tests.factories import PaymentFactory, UserFactory
from tests.helpers import ADMIN, XORPAY_AID, rows_of, wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_verify_passes_on_sound_books(app, session):
    UserFactory(balance="3.00")
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "no breach" in result.output


def test_verify_exits_1_and_reports_a_tampered_balance(app, session):
    user = UserFactory(balance="3.00")
    session.execute(text("UPDATE billing_accounts SET balance = 4 WHERE user_id = :u"), {"u": user.id})
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"{user.id}: balance 4.0000 but ledger sums to 3.0000" in result.output
    assert "newest entry says 3.0000" in result.output


def test_reconcile_command_reports_and_exits_1_on_gateway_errors(app, session, xorpay):
    PaymentFactory()
    xorpay.server.expect_request(f"/api/query2/{XORPAY_AID}").respond_with_data("oops", status=500)
    result = app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 1
    assert "checked 1, credited 0, expired 0, errors 1" in result.output


def test_demo_seed_creates_the_demo_account_once(app, session):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "seed"]).exit_code == 0
    assert "exists already" in runner.invoke(args=["demo", "seed"]).output
    demo = session.scalars(select(User).where(User.email == "demo@example.com")).one()
    assert session.get(BillingAccount, demo.id).balance == Decimal("100.00")


def test_users_create_prints_the_new_id(app, session):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "Admin@Example.com", "--password", "pw-123456", "--admin"]
    )
    assert result.exit_code == 0, result.output
    user = session.get(User, uuid.UUID(result.stdout.strip()))
    assert (user.email, user.is_admin) == ("admin@example.com", True)


def test_users_create_refuses_a_taken_email(app, session):
    UserFactory(email="dup@example.com")
    result = app.test_cli_runner().invoke(args=["users", "create", "dup@example.com", "--password", "pw-123456"])
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_a_command_prints_only_what_it_means_to(database_url, tmp_path):
    """No library warning before the output, even where XDG_RUNTIME_DIR is unset (as under cron)."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.update(DATABASE_URL=database_url, LEDGER_ENV="testing", PYTHONWARNINGS="default")
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "ledger", "verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout == "ledger verified: no breach\n", done.stderr
    assert [line for line in done.stderr.splitlines() if not line.startswith("checking: ")] == []


def test_the_embedded_postgresql_loads_without_warnings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    code = "import ledger.db as db; db.load_pgserver()"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_events_replay_makes_past_events_due_again_and_refuses_a_bad_time(app, session):
    person = UserFactory(balance="5.00")
    adjust(session, ADMIN, person.id, "1.00", debit=False, reason="r")
    event = session.scalars(select(Event).where(Event.user_id == person.id)).one()
    event.status, event.delivered_at = "delivered", event.created_at
    session.flush()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["events", "replay", "--since", "2020-01-01T00:00", "--type", "balance.adjusted"])
    assert result.exit_code == 0 and result.output.startswith("1 event(s) due again from 2020-01-01T00:00:00+08:00")
    session.refresh(event)
    assert (event.status, event.delivered_at) == ("pending", None)
    bad = runner.invoke(args=["events", "replay", "--since", "yesterday"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


@pytest.mark.committed
def test_the_jobs_worker_command_runs_event_delivery_on_its_queue_beside_the_other_jobs(
    database_url, committed, tmp_path
):
    """`flask jobs worker` (which `make run` starts too) works every queue: event delivery's own
    ("events", one job at a time) and the others' ("default")."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.update(DATABASE_URL=database_url, LEDGER_ENV="testing")
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "worker", "--concurrency", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:  # its periodic jobs are queued by the worker itself as it starts
            done = "SELECT task_name, queue_name FROM procrastinate_jobs WHERE status = 'succeeded'"
            wait_until(
                lambda: (
                    {("ledger:deliver_events", "events"), ("ledger:expire_holds", "default")}
                    <= set(rows_of(committed, done))
                ),
                seconds=60,
                what=lambda: "the worker's periodic jobs:\n" + (tmp_path / "worker.log").read_text()[-3000:],
            )
        finally:
            worker.terminate()  # SIGTERM: the running jobs finish first
            assert worker.wait(timeout=60) == 0


def test_admin_adjust_credits_with_an_expiry_and_refuses_one_in_the_past(app, session):
    person = UserFactory(email="gifted@example.com", balance="8.29")
    runner = app.test_cli_runner()
    given = runner.invoke(
        args=["admin", "adjust", "gifted@example.com", "20.00", "--reason", "goodwill",
              "--expires-at", "2099-01-31T23:59:59+08:00"]
    )  # fmt: skip
    assert given.exit_code == 0, given.output
    assert given.stdout == "gifted@example.com: balance 8.29 -> 28.29 (expires 2099-01-31T15:59:59+00:00)\n"
    expiries = session.scalars(
        select(CreditLot.expires_at).where(CreditLot.user_id == person.id).order_by(CreditLot.id)
    )
    assert list(expiries) == [None, datetime(2099, 1, 31, 15, 59, 59, tzinfo=UTC)]
    for when, said in [("2020-01-01T00:00:00+08:00", "in the future"), ("soon", "2027-01-31T23:59:59+08:00")]:
        refused = runner.invoke(
            args=["admin", "adjust", "gifted@example.com", "1.00", "--reason", "r", "--expires-at", when]
        )
        assert refused.exit_code == 1 and said in refused.stderr
    debit = runner.invoke(
        args=["admin", "adjust", "gifted@example.com", "1.00", "--debit", "--reason", "r", "--expires-at", "2099-01-01"]
    )
    assert debit.exit_code == 1 and "Only a credit can expire" in debit.stderr
    assert session.scalar(select(func.count()).select_from(CreditLot).where(CreditLot.user_id == person.id)) == 2


def test_admin_adjust_prints_money_as_everywhere_else(app, session):
    UserFactory(email="rich@example.com", balance="1234.5678")  # a charge may leave 4 decimals
    done = app.test_cli_runner().invoke(args=["admin", "adjust", "rich@example.com", "20.00", "--reason", "r"])
    assert done.exit_code == 0, done.output
    assert done.stdout == "rich@example.com: balance 1,234.5678 -> 1,254.5678\n"
