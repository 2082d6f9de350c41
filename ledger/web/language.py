"""The person's language (Chinese by default, English on request) and time zone."""

from __future__ import annotations

from functools import lru_cache

from babel.dates import get_timezone_location
from flask import Flask, request
from flask_babel import get_locale, gettext

from ledger.extensions import babel
from ledger.i18n import N_
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


# How a top-up order's status reads (a badge on pages, a word in a message).
PAYMENT_STATUS_LABELS = {
    "pending": N_("Awaiting payment"),
    "succeeded": N_("Paid"),
    "failed": N_("Failed"),
    "expired": N_("Expired"),
}


def payment_status_label(status: object) -> str:
    status = str(getattr(status, "value", status))
    return gettext(PAYMENT_STATUS_LABELS[status]) if status in PAYMENT_STATUS_LABELS else status


# China's zone under its other names too: people there call it Beijing time, not "Shanghai".
CHINA_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "PRC"})


def zone_label(zone: str) -> str:
    """A time zone as people call it, in their language: 北京时间 / Beijing time for China's, else
    the place's name ("美国（洛杉矶）时间", "United States (Los Angeles) Time")."""
    if zone in CHINA_ZONES:
        return gettext("Beijing time")
    return _location(zone, str(get_locale()))


def zone_choices(zones: list[str]) -> list[tuple[str, str]]:
    """Choices for a time zone select: each zone by its name, the IANA id after it."""
    return [(zone, f"{zone_label(zone)} · {zone}") for zone in zones]


@lru_cache(maxsize=4096)
def _location(zone: str, locale: str) -> str:  # Babel takes about a millisecond a zone
    return get_timezone_location(zone, locale=locale)


def select_timezone() -> str:
    return str(user_timezone())


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
