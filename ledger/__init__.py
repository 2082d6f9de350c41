"""Ledger: a prepaid balance for a SaaS. `create_app()` wires config, extensions, web support,
blueprints and commands. Nothing else."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ledger import db
from ledger.config import Settings, load_settings


def create_app(settings: Settings | None = None, database: db.Database | None = None) -> Flask:
    from ledger import cli
    from ledger.blueprints import (
        account,
        api_billing,
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
    from ledger.extensions import bootstrap, csrf, limiter
    from ledger.services.xorpay import XorPayClient
    from ledger.web import auth as web_auth
    from ledger.web import errors, i18n, parsing, templating
    from ledger.web import security as web_security

    settings = settings or load_settings()
    app = Flask(__name__, instance_path=settings.INSTANCE_PATH)
    app.config.update(settings.flask_config())
    if settings.is_production:  # behind one proxy that sets X-Forwarded-For / -Proto
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]

    db.init_app(
        app,
        database or db.Database(db.make_engine(db.resolve_database_url(settings.DATABASE_URL, settings.INSTANCE_PATH))),
    )
    app.extensions["ledger.xorpay"] = XorPayClient(
        settings.XORPAY_API_BASE, settings.XORPAY_AID, settings.XORPAY_APP_SECRET
    )
    csrf.init_app(app)
    limiter.init_app(app)
    bootstrap.init_app(app)
    for web_support in (errors, web_auth, i18n, parsing, templating, web_security):
        web_support.init_app(app)

    for module in (
        site,
        auth,
        console,
        payments,
        usage,
        invites,
        account,
        security,
        api_billing,
        api_payments,
        api_invites,
        api_usage,
        health,
    ):
        app.register_blueprint(module.bp)
    if settings.XORPAY_SANDBOX:  # a stand-in gateway for development; config refuses it in production
        from ledger.sandbox import bp as sandbox_bp

        app.register_blueprint(sandbox_bp)
    cli.register_commands(app)
    if settings.is_production and settings.RATELIMIT_STORAGE_URI.startswith("memory://"):
        app.logger.warning("RATELIMIT_STORAGE_URI is memory://: with several processes each counts alone; use Redis")
    return app
