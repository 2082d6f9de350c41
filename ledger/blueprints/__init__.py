"""One blueprint per page group and per API group, in packages by the same domains as the services
(books, payments, growth, people, backoffice, console); each is thin: parse, call a service, render."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask, *, sandbox: bool) -> None:
    """Every page and API of the app; the XorPay sandbox only when asked (config refuses it in production)."""
    from ledger.blueprints import backoffice, health, site
    from ledger.blueprints.books import billing_api, holds_api, usage, usage_api
    from ledger.blueprints.console import api as console_api
    from ledger.blueprints.console import pages as console
    from ledger.blueprints.growth import codes_api, invites, invites_api, plans, plans_api
    from ledger.blueprints.payments import api as payments_api
    from ledger.blueprints.payments import recharge
    from ledger.blueprints.people import account, auth, security, users_api

    pages = (site, auth, console, recharge, usage, invites, plans, account, security, backoffice)
    apis = (
        billing_api,
        holds_api,
        payments_api,
        invites_api,
        codes_api,
        plans_api,
        usage_api,
        console_api,
        users_api,
        health,
    )
    for module in (*pages, *apis):
        app.register_blueprint(module.bp)
    if sandbox:
        from ledger.sandbox import bp as sandbox_bp  # a stand-in gateway for development and tests

        app.register_blueprint(sandbox_bp)
