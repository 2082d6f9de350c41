"""One blueprint per page group and per API group; each is thin: parse, call a service, render."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask, *, sandbox: bool) -> None:
    """Every page and API of the app; the XorPay sandbox only when asked (config refuses it in production)."""
    from ledger.blueprints import (
        account,
        admin,
        api_billing,
        api_codes,
        api_holds,
        api_invites,
        api_payments,
        api_usage,
        auth,
        console,
        health,
        invites,
        payments,
        security,
        site,
        usage,
    )

    pages = (site, auth, console, payments, usage, invites, account, security, admin)
    apis = (api_billing, api_holds, api_payments, api_invites, api_codes, api_usage, health)
    for module in (*pages, *apis):
        app.register_blueprint(module.bp)
    if sandbox:
        from ledger.sandbox import bp as sandbox_bp  # a stand-in gateway for development and tests

        app.register_blueprint(sandbox_bp)
