"""`flask --app wsgi ...` commands, each a thin call into services."""

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from ledger import metrics
from ledger.db import get_database
from ledger.errors import LedgerError
from ledger.jobs import job_queue
from ledger.logs import configure_logging
from ledger.models import EventType, User
from ledger.money import format_amount
from ledger.services.backoffice.people import adjust, set_admin
from ledger.services.books.accounts import adjust_balance
from ledger.services.books.invariants import find_breaches, find_warnings
from ledger.services.context import SYSTEM, Context, app_clock
from ledger.services.events import deliver_due, replay, send_sample
from ledger.services.growth import plans
from ledger.services.growth.code_batches import create_batch
from ledger.services.growth.codes import shown
from ledger.services.payments.refunds import refund_order
from ledger.services.payments.settlement import reconcile
from ledger.services.people.backend_accounts import external_id_of
from ledger.services.people.sign_in import register_user

ledger_cli = AppGroup("ledger", help="Checks of the books.")
payments_cli = AppGroup("payments", help="Top-up orders at XorPay.")
demo_cli = AppGroup("demo", help="Demo data for development.")
users_cli = AppGroup("users", help="People and their accounts.")
jobs_cli = AppGroup("jobs", help="Background and periodic work (procrastinate).")
admin_cli = AppGroup("admin", help="The back office's actions, from the server.")
events_cli = AppGroup("events", help="Events to the SaaS (SPEC 16).")
codes_cli = AppGroup("codes", help="Redemption codes (兑换码).")
plans_cli = AppGroup("plans", help="Plans (套餐) and their subscriptions.")


def system_context() -> Context:
    """The context of a command run by the system (reconcile, the seed): on the app's clock."""
    return replace(SYSTEM, clock=app_clock(current_app.extensions), settings=current_app.config["LEDGER"])


def cli_admin() -> Context:
    """An admin at the server's console: no admin id, `via="cli"`."""
    return system_context().as_admin(None, via="cli")


DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105 - documented demo credentials, development only
DEMO_BALANCE = Decimal("100.00")


@ledger_cli.command("verify")
def verify() -> None:
    """Check every invariant of SPEC 4 over all accounts; exit 1 with a report on any breach."""
    with get_database().session() as session:
        breaches = list(find_breaches(session, progress=lambda name: click.echo(f"checking: {name}", err=True)))
        warnings = list(find_warnings(session, events_sent=bool(current_app.config["LEDGER"].EVENTS_URL)))
    for w in warnings:
        click.echo(f"warning: [{w.invariant}] {w.subject}: {w.detail}")
    if breaches:
        click.echo(f"{len(breaches)} breach(es) found:")
        for b in breaches:
            click.echo(f"  [{b.invariant}] {b.subject}: {b.detail}")
        sys.exit(1)
    click.echo("ledger verified: no breach")


@payments_cli.command("reconcile")
def reconcile_payments() -> None:
    """Ask XorPay (query2) about pending orders: credit paid ones, expire stale ones."""
    with get_database().session() as session:
        report = reconcile(
            session,
            system_context(),
            current_app.extensions["ledger.xorpay"],
            progress=lambda order_id, outcome: click.echo(f"  {order_id}: {outcome}", err=True),
        )
    click.echo(
        f"checked {report.checked}, credited {report.credited}, expired {report.expired}, errors {report.errors}"
    )
    if report.errors:
        sys.exit(1)


@demo_cli.command("seed")
def seed() -> None:
    """Create the demo account (demo@example.com / demo-password) with a balance, unless it exists."""
    with get_database().session() as session:
        if session.scalar(select(User.id).where(User.email == DEMO_EMAIL)):
            click.echo(f"{DEMO_EMAIL} exists already: nothing to do")
            return
        user = register_user(session, email=DEMO_EMAIL, password=DEMO_PASSWORD, ctx=system_context())
        adjust_balance(session, user_id=user.id, amount=DEMO_BALANCE, memo="demo seed", ctx=system_context())
    click.echo(f"created {DEMO_EMAIL} / {DEMO_PASSWORD} with a balance of {DEMO_BALANCE} CNY")


@users_cli.command("create")
@click.argument("email")
@click.option("--password", help="Default: a random password, printed once.")
@click.option("--no-password", is_flag=True, help="None: the person comes in through portal links until they set one.")
@click.option("--external-id", help="Your SaaS's own id of the person (1-128 characters of A-Za-z0-9._:-).")
@click.option("--admin", is_flag=True, help="Give the person the admin role.")
def create_user(email: str, password: str | None, no_password: bool, external_id: str | None, admin: bool) -> None:
    """Create a person; print the new user's id."""
    if password and no_password:
        raise click.UsageError("give --password or --no-password, not both")
    generated = password is None and not no_password
    password = password or secrets.token_urlsafe(12)
    with get_database().session() as session:
        try:
            user = register_user(
                session,
                email=email,
                password=password,
                ctx=cli_admin(),
                is_admin=admin,
                without_password=no_password,
                external_id=external_id_of(external_id),
            )
        except LedgerError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(str(user.id))
    if generated:
        click.echo(f"password: {password}", err=True)


@jobs_cli.command("worker")
@click.option("--concurrency", default=4, show_default=True, help="Jobs run at the same time by this worker.")
@click.option("--metrics-port", type=int, help="Serve this worker's counters on 127.0.0.1:PORT/metrics for Prometheus.")
def run_worker(concurrency: int, metrics_port: int | None) -> None:
    """Run jobs and periodic jobs until stopped (Ctrl-C or SIGTERM finishes the running jobs first)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    configure_logging(everything=True)
    if metrics_port:
        metrics.serve_from_worker(metrics_port)
    click.echo(
        f"worker: {concurrency} at a time on every queue (event delivery takes at most one); periodic: events"
        " every 10 s, hold and credit expiry and plan renewals every minute, reconcile every 5",
        err=True,
    )
    job_queue(app).run_worker(app, concurrency=concurrency)


@contextmanager
def refusals_exit_1() -> Iterator[None]:
    """A refusal ends the command with exit 1 and its reason on stderr."""
    try:
        yield
    except LedgerError as refused:
        click.echo(f"refused: {refused}", err=True)
        sys.exit(1)


@users_cli.command("set-admin")
@click.argument("email")
@click.option("--off", is_flag=True, help="Take the admin role away.")
def set_admin_role(email: str, off: bool) -> None:
    """Give a person the admin role (or take it away)."""
    with get_database().session() as session, refusals_exit_1():
        person = set_admin(session, cli_admin(), email, on=not off)
    click.echo(f"{person.email}: admin {'off' if off else 'on'}")


@admin_cli.command("adjust")
@click.argument("email")
@click.argument("amount")
@click.option("--debit", is_flag=True, help="Take AMOUNT away (at most the available amount).")
@click.option("--reason", required=True, help="Why: kept in the audit trail.")
@click.option(
    "--expires-at",
    help="When a credit expires (ISO 8601, e.g. 2027-01-31T23:59:59+08:00; default: GRANT_EXPIRY_DAYS).",
)
def adjust_command(email: str, amount: str, debit: bool, reason: str, expires_at: str | None) -> None:
    """Credit (or, with --debit, debit) a person's balance by AMOUNT, a positive amount such as 10.00."""
    with get_database().session() as session, refusals_exit_1():
        person = session.scalar(select(User).where(User.email == email.strip().lower()))
        done = adjust(
            session,
            cli_admin(),
            person.id if person else None,
            amount,
            debit=debit,
            reason=reason,
            expires_at=expires_at,
            tz=current_app.config["LEDGER"].timezone,
        )
    expiry = f" (expires {done.expires_at.isoformat()})" if done.expires_at else ""
    before, after = format_amount(done.balance), format_amount(done.balance_after)
    click.echo(f"{done.person.email}: balance {before} -> {after}{expiry}")


@payments_cli.command("refund")
@click.argument("order_id")
@click.argument("amount")
@click.option("--reason", required=True, help="Why: kept in the audit trail.")
def refund_command(order_id: str, amount: str, reason: str) -> None:
    """Refund AMOUNT of a paid order through XorPay (SPEC 15)."""
    with get_database().session() as session, refusals_exit_1():
        done = refund_order(
            session, current_app.extensions["ledger.xorpay"], cli_admin(), order_id, amount, reason=reason
        )
    click.echo(f"refund {done.id}: {done.status.value}")
    if done.status.value != "succeeded":
        sys.exit(1)


@events_cli.command("replay")
@click.option(
    "--since", required=True, help="Send again every event from this time on (ISO 8601, e.g. 2026-11-26T08:00+08:00)."
)
@click.option("--type", "type_", type=click.Choice([t.value for t in EventType]), help="Only events of this type.")
def replay_events(since: str, type_: str | None) -> None:
    """Make past events due again, delivered or not; the worker sends them (the receiver dedupes by id)."""
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise click.BadParameter("an ISO 8601 time, such as 2026-11-26T08:00+08:00", param_hint="--since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=current_app.config["LEDGER"].timezone)  # the site's zone, as pages show it
    with get_database().session() as session:
        count = replay(session, system_context(), since=moment, type_=EventType(type_) if type_ else None)
    click.echo(f"{count} event(s) due again from {moment.isoformat()}")


@events_cli.command("deliver")
def deliver_events() -> None:
    """Post the events that are due now, in one bounded run as the worker's job does (at most 200,
    none started after 20 s): for deployments that run no worker, call it from cron."""
    settings = current_app.config["LEDGER"]
    if not settings.EVENTS_URL:
        click.echo("EVENTS_URL is empty: events are kept, not sent", err=True)
        return
    with get_database().session() as session:
        done = deliver_due(session, system_context(), url=settings.EVENTS_URL, secret=settings.EVENTS_SECRET)
    click.echo(f"delivered {done.delivered}, failed {done.failed} (retried later), abandoned {done.abandoned}")


@events_cli.command("send-test")
@click.argument("type_", metavar="TYPE", type=click.Choice([t.value for t in EventType]))
def send_test_event(type_: str) -> None:
    """Post a sample event of TYPE to EVENTS_URL, signed with EVENTS_SECRET as real deliveries are
    (the sample of /api/openapi.json's webhooks, with a new id): to test a receiver. Prints the
    receiver's status; exit 1 unless it is a 2xx. Nothing is written."""
    settings = current_app.config["LEDGER"]
    if not settings.EVENTS_URL:
        raise click.ClickException("EVENTS_URL is empty: set it (and EVENTS_SECRET) to your receiver's URL first")
    sent = send_sample(settings.EVENTS_URL, settings.EVENTS_SECRET, EventType(type_), now=system_context().now())
    if sent.status is None:
        click.echo(f"{type_} sample {sent.event_id}: not delivered ({sent.error})", err=True)
        sys.exit(1)
    click.echo(f"{type_} sample {sent.event_id}: HTTP {sent.status}")
    if not sent.delivered:
        sys.exit(1)


@codes_cli.command("create")
@click.option("--count", required=True, help="How many codes: 1 to 10,000.")
@click.option("--amount", required=True, help="What each code is worth, such as 50.00.")
@click.option("--expires", help="The last day a code can be redeemed: YYYY-MM-DD, inclusive, in DEFAULT_TIMEZONE.")
@click.option("--note", help="A note on the batch, such as the reseller's name.")
@click.option("--reason", default="codes create", show_default=True, help="Why: kept in the audit trail.")
@click.option("--credit-days", help="A code's credit expires N days (N >= 1) after its redemption.")
def create_codes(
    count: str, amount: str, expires: str | None, note: str | None, reason: str, credit_days: str | None
) -> None:
    """Create a batch of redemption codes; print them, one per line (XXXX-XXXX-XXXX-XXXX)."""
    with get_database().session() as session, refusals_exit_1():
        batch, made = create_batch(
            session,
            cli_admin(),
            count=count,
            amount=amount,
            expires=expires,
            note=note,
            reason=reason,
            tz=current_app.config["LEDGER"].timezone,
            credit_days=credit_days,
        )
    click.echo("\n".join(shown(code) for code in made))
    click.echo(f"batch {batch.id}: {len(made)} code(s) of {batch.amount:.2f}", err=True)


@plans_cli.command("list")
def list_plans() -> None:
    """Print every plan, those on sale first: code, price a period, allowance, subscribers, names."""
    with get_database().session() as session:
        rows = plans.list_plans(session)
    for row in rows:
        p = row.plan
        state = "" if p.active else "  (retired)"
        click.echo(
            f"{p.code}\t{p.price:.2f}/{p.period.value}\tallowance {p.allowance:.2f}\t{row.holders} subscriber(s)"
            f"\t{p.name_zh} / {p.name_en}{state}"
        )
    if not rows:
        click.echo("no plans", err=True)


@plans_cli.command("create")
@click.argument("code")
@click.option("--name-zh", required=True, help="The plan's name in Chinese.")
@click.option("--name-en", required=True, help="The plan's name in English.")
@click.option("--price", required=True, help="What a period costs, such as 30.00.")
@click.option("--period", required=True, type=click.Choice(["week", "month"]), help="A week or a calendar month.")
@click.option("--allowance", required=True, help="The plan money each period grants, such as 50.00.")
@click.option("--reason", default="plans create", show_default=True, help="Why: kept in the audit trail.")
def create_plan(code: str, name_zh: str, name_en: str, price: str, period: str, allowance: str, reason: str) -> None:
    """Create a plan with CODE (2 to 32 lowercase letters, digits and dashes), on sale at once."""
    with get_database().session() as session, refusals_exit_1():
        plan = plans.create_plan(
            session,
            cli_admin(),
            code=code,
            name_zh=name_zh,
            name_en=name_en,
            price=price,
            period=period,
            allowance=allowance,
            reason=reason,
        )
    click.echo(f"plan {plan.code}: {plan.price:.2f} a {plan.period.value} for {plan.allowance:.2f} of allowance")


@plans_cli.command("renew")
def renew_plans() -> None:
    """Renew or lapse the subscriptions whose period has ended, as the worker's job does every
    minute: for deployments that run no worker, call it from cron."""
    with get_database().session() as session:
        run = plans.renew_due(session, system_context())
    click.echo(f"renewed {run.renewed}, lapsed {run.lapsed}")


def register_commands(app: Flask) -> None:
    for group in (ledger_cli, payments_cli, demo_cli, users_cli, jobs_cli, admin_cli, events_cli, codes_cli, plans_cli):
        app.cli.add_command(group)
