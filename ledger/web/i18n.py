"""The person's language (Chinese by default, English on request) and time zone."""

from __future__ import annotations

from flask import Flask, request

from ledger.extensions import babel
from ledger.web.context import user_timezone

LANGUAGES = {"zh": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh"


def select_locale() -> str:
    """The `lang` cookie (set by /lang/<code>), else Chinese: what a browser's pages and their API
    calls speak alike. Another service of the SaaS (it sends x-internal-token) may ask with
    Accept-Language instead."""
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    if "x-internal-token" in request.headers:
        return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


def select_timezone() -> str:
    return str(user_timezone())


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
