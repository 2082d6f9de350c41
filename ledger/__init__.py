"""Ledger: a prepaid balance for a SaaS. `create_app()` wires config, extensions, web support,
blueprints and commands. Nothing else (the task queue, ledger.jobs, is made on first use)."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ledger import db
from ledger.config import Settings, load_settings


def create_app(settings: Settings | None = None, database: db.Database | None = None) -> Flask:
    from ledger import cli
    from ledger.blueprints import register_blueprints
    from ledger.extensions import bootstrap, csrf, limiter
    from ledger.logs import configure_logging
    from ledger.services.payments.xorpay import XorPayClient
    from ledger.services.people import sign_in
    from ledger.web import assets, auth, errors, language, openapi, parsing, security, templating, tracing

    settings = settings or load_settings()
    sign_in.use_password_hash(settings.PASSWORD_HASH)
    app = Flask(__name__, instance_path=settings.INSTANCE_PATH)
    app.config.update(settings.flask_config())
    if settings.PROXY_COUNT:  # only the proxies we run may say who the client is (SPEC 19)
        proxies = settings.PROXY_COUNT
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

    db.init_app(
        app,
        database or db.Database(db.make_engine(db.resolve_database_url(settings.DATABASE_URL, settings.INSTANCE_PATH))),
    )
    app.extensions["ledger.xorpay"] = XorPayClient(
        settings.XORPAY_API_BASE, settings.XORPAY_AID, settings.XORPAY_APP_SECRET
    )
    if settings.LEDGER_ENV != "testing":  # tests read log records through pytest's capture
        configure_logging()
    tracing.init_app(app)  # first: a request that CSRF or a rate limit refuses is still traced and counted
    auth.guard_back_office(app)  # then: nobody but an admin learns from CSRF or routing that /admin exists
    for extension in (csrf, limiter, bootstrap):
        extension.init_app(app)
    for web_support in (errors, auth, language, parsing, templating, security, openapi, assets):
        web_support.init_app(app)
    register_blueprints(app, sandbox=settings.XORPAY_SANDBOX)
    cli.register_commands(app)
    return app
