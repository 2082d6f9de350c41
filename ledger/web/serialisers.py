"""One JSON shape per resource, used by every route that returns it. Money as exact strings,
times as ISO-8601 with the offset of the person's time zone (SPEC 6)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledger.models import PaymentTransaction, UsageLog, User
from ledger.money import to_api
from ledger.services.books.batch_charges import ItemResult
from ledger.services.books.engine import Usage
from ledger.services.books.holds import HoldAnswer, HoldView
from ledger.services.books.usage_reports import Group, Item
from ledger.services.growth.plans import Subscribed
from ledger.services.people.backend_accounts import AccountMoney
from ledger.web.context import site_timezone, user_timezone
from ledger.web.errors import error_body


def iso(dt: datetime | None, tz: ZoneInfo | None = None) -> str | None:
    """An API time: ISO-8601 with the offset of the person's time zone."""
    return None if dt is None else dt.astimezone(tz or user_timezone()).isoformat()


def usage_json(usage: UsageLog | Usage | Item, tz: ZoneInfo | None = None) -> dict[str, Any]:
    """A charge (a usage log, or a report's item)."""
    return {
        "usage_id": str(usage.id),
        "model": usage.model,
        "amount": to_api(usage.amount),
        "balance_after": to_api(usage.balance_after),
        "request_id": usage.request_id,
        "params": usage.params,
        "created_at": iso(usage.created_at, tz),
    }


def order_json(order: PaymentTransaction) -> dict[str, Any]:
    """A top-up order."""
    return {
        "transaction_id": str(order.id),
        "status": order.status.value,
        "amount": to_api(order.amount),
        "pay_type": str(order.pay_type),  # alipay, or native: WeChat Pay
        "provider_order_id": order.provider_order_id,
        "created_at": iso(order.created_at),
        "paid_at": iso(order.paid_at),
        "expires_at": iso(order.expires_at),
    }


def group_json(group: Group) -> dict[str, Any]:
    """A report's group: a day or a model, with its count and amount."""
    return {"key": group.key, "count": group.count, "amount": to_api(group.amount)}


def hold_json(view: HoldView) -> dict[str, Any]:
    """A hold as it is now (SPEC 11): what placed it, its status and how it was settled. For other
    services of the SaaS: times in the site's zone."""
    hold, tz = view.hold, site_timezone()
    return {
        "hold_id": str(hold.id),
        "user_id": str(hold.user_id),
        "amount": to_api(hold.amount),  # SPEC 11's name for what was held, in every hold answer
        "held_amount": to_api(hold.amount),  # the same figure, named for what it is beside captured_amount
        "request_id": hold.request_id,
        "model": hold.model,
        "params": hold.params,
        "status": view.status.value,
        "created_at": iso(hold.created_at, tz),
        "expires_at": iso(hold.expires_at, tz),
        "settled_at": iso(view.settled_at, tz),
        "captured_amount": None if view.captured_amount is None else to_api(view.captured_amount),
        "released_amount": None if view.released_amount is None else to_api(view.released_amount),
        "usage_id": str(hold.usage_log_id) if hold.usage_log_id else None,
    }


def hold_answer_json(answer: HoldAnswer) -> dict[str, Any]:
    """What placing, capturing or releasing a hold answers: the hold, the account's figures, replayed."""
    return {
        **hold_json(HoldView.of(answer.hold, answer.now)),
        "balance": to_api(answer.balance),
        "available": to_api(answer.available),
        "replayed": answer.replayed,
    }


def charge_json(
    usage: UsageLog | Usage, balance: Decimal, *, replayed: bool, tz: ZoneInfo | None = None
) -> dict[str, Any]:
    """What a deduct answers (SPEC 6), for other services: the charge, the balance it left, replayed.
    Times in the site's zone (`tz`, when the caller has it at hand)."""
    answer = {
        **usage_json(usage, tz or site_timezone()),
        "user_id": str(usage.user_id),
        "balance": to_api(balance),
        "replayed": replayed,
    }
    if getattr(usage, "drawn", None) is not None:  # SPEC 20: what it took of each kind of money
        answer["drawn"] = {kind: to_api(amount) for kind, amount in usage.drawn.items()}
    return answer


def batch_json(results: list[ItemResult]) -> list[dict[str, Any]]:
    """A batch's answers (SPEC 12), in item order: charged and replayed items carry a deduct's
    answer, the others the error a deduct would have answered."""
    tz = site_timezone()  # read once, not once an item
    return [_batch_item_json(result, tz) for result in results]


def _batch_item_json(result: ItemResult, tz: ZoneInfo) -> dict[str, Any]:
    if result.usage is not None and result.balance is not None:
        answer = charge_json(result.usage, result.balance, replayed=result.status == "replayed", tz=tz)
        return {"index": result.index, "status": result.status, **answer}
    assert result.error is not None
    return {"index": result.index, "status": result.status, "error": error_body(result.error)}


def account_json(user: User, money: AccountMoney) -> dict[str, Any]:
    """A person's account as the SaaS's backend reads it (SPEC 25); times in the person's zone."""
    zone = ZoneInfo(user.timezone) if user.timezone else site_timezone()
    return {
        "user_id": str(user.id),
        "email": user.email,
        "external_id": user.external_id,
        "username": user.username,
        "created_at": iso(user.created_at, zone),
        "disabled": user.disabled_at is not None,
        "balance": to_api(money.balance),
        "held": to_api(money.held),
        "available": to_api(money.available),
        "paid": to_api(money.paid),
        "granted": to_api(money.granted),
        "plan": to_api(money.plan),
    }


def subscription_json(done: Subscribed) -> dict[str, Any]:
    """A subscription (SPEC 21), as subscribing and cancelling answer it: times in the zone its
    periods are counted in (the person's), with the person's money after the call."""
    sub, tz = done.subscription, ZoneInfo(done.subscription.timezone)
    return {
        "subscription_id": str(sub.id),
        "user_id": str(sub.user_id),
        "plan": done.plan.code,
        "status": sub.status.value,
        "auto_renew": sub.auto_renew,
        "current_period_start": iso(sub.current_period_start, tz),
        "current_period_end": iso(sub.current_period_end, tz),
        "balance": to_api(done.money.balance),
        "available": to_api(done.money.available),
    }
