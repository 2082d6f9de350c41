"""Rate limits counted per signed-in person (SPEC 19), beside the per-address ones of sign-in and
sign-up. Each names a setting, read per request, and a scope that the routes doing the same thing
share (the top-up page and its API count as one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from ledger.extensions import limiter
from ledger.web.context import settings


def per_person(setting: str, scope: str, *, per_order: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """Limit a route to the rate in `setting` for each person (and each order, with `per_order`)."""

    def key() -> str:
        who = current_user.get_id() or get_remote_address()  # a visitor is sent to sign in anyway
        order = f":{_canonical(request.view_args.get('transaction_id'))}" if per_order and request.view_args else ""
        return f"{scope}:{who}{order}"

    return limiter.shared_limit(lambda: getattr(settings(), setting), scope=scope, key_func=key)


def _canonical(order_id: object) -> str:
    """One spelling per order (UUID() reads capitals, braces, urn:uuid: and no dashes alike), so that
    writing the id another way does not start a new count."""
    try:
        return str(uuid.UUID(str(order_id)))
    except ValueError:
        return str(order_id)[:64]


# Creating an order calls XorPay; so does "check now".
topup_creation = per_person("RATELIMIT_TOPUP", "topup-create")
topup_check = per_person("RATELIMIT_TOPUP_CHECK", "topup-check", per_order=True)
