"""One Settings object, read from the environment (and `.env`), validated at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from limits import parse_many

from ledger.money import InvalidAmount, parse_amount

# Development defaults: refused in production so that nobody deploys them by accident.
DEV_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 - refused in production
DEV_INTERNAL_API_KEY = "dev-internal-api-key-change-me"
DEV_XORPAY_APP_SECRET = "dev-xorpay-app-secret"  # noqa: S105 - refused in production

ENVIRONMENTS = ("development", "production", "testing")
DEV_HOST, DEV_PORT = "127.0.0.1", 5000
XORPAY_API = "https://xorpay.com"


def _reachable(host: str) -> str:
    """The address to reach a server listening on `host`: a wildcard is reached on this machine."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - names the wildcard, binds nothing
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class ConfigError(RuntimeError):
    """The configuration cannot run: the message says which variable and why."""


@dataclass(frozen=True)
class Settings:
    LEDGER_ENV: str = "development"
    SECRET_KEY: str = DEV_SECRET_KEY
    DATABASE_URL: str = ""
    # Where `make run` listens (`make serve` reads them too, with 8000 for its default port).
    HOST: str = DEV_HOST
    PORT: int = DEV_PORT
    # Empty: follows HOST and PORT (http://127.0.0.1:5000), so that a copy on another port sends its
    # sandbox payments and their notifies to itself. XORPAY_NOTIFY_URL and, with the sandbox,
    # XORPAY_API_BASE follow SITE_URL unless set.
    SITE_URL: str = ""
    SITE_NAME: str = "Ledger"  # what people see: page titles, the header, the footer, receipts
    XORPAY_AID: str = "sandbox-aid"
    XORPAY_APP_SECRET: str = DEV_XORPAY_APP_SECRET
    XORPAY_NOTIFY_URL: str = ""  # empty: SITE_URL + /api/payments/webhook
    XORPAY_API_BASE: str = ""  # empty: the sandbox's own (SITE_URL + /sandbox/xorpay) or https://xorpay.com
    XORPAY_SANDBOX: bool = False
    INTERNAL_API_KEY: str = DEV_INTERNAL_API_KEY
    TOPUP_MIN: Decimal = Decimal("1.00")
    TOPUP_MAX: Decimal = Decimal("1000.00")  # a payment with Alipay (XorPay takes at most 1000.00: SPEC 7)
    TOPUP_MAX_WECHAT: Decimal = Decimal("20000.00")  # a payment with WeChat Pay (XorPay's native)
    INVITE_REWARD_INVITER: Decimal = Decimal("5.00")
    INVITE_REWARD_INVITEE: Decimal = Decimal("2.00")
    INVITE_REWARD_ON_FIRST_TOPUP: bool = True
    # Against invite farming (SPEC 19): the first top-up that pays a reward, and rewards per inviter in 30 days.
    INVITE_REWARD_MIN_TOPUP: Decimal = Decimal("10.00")
    INVITE_REWARD_MAX_PER_MONTH: int = 20
    TOPUP_MAX_PENDING: int = 5  # unpaid orders a person may have open at once
    DEFAULT_TIMEZONE: str = "Asia/Shanghai"
    RATELIMIT_LOGIN: str = "10/minute"
    RATELIMIT_REGISTER: str = "20/hour"
    RATELIMIT_TOPUP: str = "10/minute"  # orders a person may create
    RATELIMIT_TOPUP_CHECK: str = "6/minute"  # "check now" on one order
    RATELIMIT_WEBHOOK_REFUSALS: str = "60/minute"  # refused notifies per source address
    RATELIMIT_STORAGE_URI: str = "memory://"
    RATELIMIT_ENABLED: bool = True
    # How many proxies in front set X-Forwarded-For / -Proto; 0 trusts none (a client could forge them).
    PROXY_COUNT: int = 0
    # Hosts (host, or host:port, comma-separated, exact) a portal link's return_url may lead to (SPEC 25).
    PORTAL_RETURN_HOSTS: str = ""
    # Events to the SaaS (SPEC 16): posted to EVENTS_URL (empty: kept, not sent), signed with EVENTS_SECRET.
    EVENTS_URL: str = ""
    EVENTS_SECRET: str = ""
    LOW_BALANCE_THRESHOLD: Decimal = Decimal("10.00")
    # Gifts (invite rewards, admin credits, codes without their own) expire this many whole days of
    # 24 hours after the credit (SPEC 20); empty or 0: never. Paid money never expires.
    GRANT_EXPIRY_DAYS: int = 0
    # A credit.expiring event is sent when a lot enters its last days before expiry.
    CREDIT_EXPIRY_NOTICE_DAYS: int = 7
    # Bearer token of GET /metrics (empty: /metrics answers 401 to everyone).
    METRICS_TOKEN: str = ""
    # How passwords are hashed (werkzeug's method string): scrypt, slow on purpose; tests use a fast one.
    PASSWORD_HASH: str = "scrypt"  # noqa: S105 - a hashing method's name, not a password
    # Where the embedded PostgreSQL keeps its data when DATABASE_URL is unset.
    INSTANCE_PATH: str = field(default_factory=lambda: str(Path.cwd() / "instance"))

    def __post_init__(self) -> None:
        """The addresses left empty, made from the ones given (the settings stay one frozen object)."""
        site = self.SITE_URL or f"http://{_reachable(self.HOST)}:{self.PORT}"
        derived = {
            "SITE_URL": site,
            "XORPAY_NOTIFY_URL": self.XORPAY_NOTIFY_URL or f"{site.rstrip('/')}/api/payments/webhook",
            "XORPAY_API_BASE": self.XORPAY_API_BASE
            or (f"{site.rstrip('/')}/sandbox/xorpay" if self.XORPAY_SANDBOX else XORPAY_API),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def is_production(self) -> bool:
        return self.LEDGER_ENV == "production"

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.DEFAULT_TIMEZONE)

    def flask_config(self) -> dict[str, object]:
        """The keys Flask and its extensions read, derived from these settings."""
        return {
            "SECRET_KEY": self.SECRET_KEY,
            "LEDGER": self,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.is_production,
            "PERMANENT_SESSION_LIFETIME": 30 * 24 * 3600,
            "MAX_CONTENT_LENGTH": 4 * 1024 * 1024,  # room for a 2 MB avatar; JSON bodies are far smaller
            "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
            "BABEL_DEFAULT_LOCALE": "zh",
            "BABEL_DEFAULT_TIMEZONE": self.DEFAULT_TIMEZONE,
            "BOOTSTRAP_SERVE_LOCAL": True,  # no CDN: the app works offline and its CSP stays 'self'
            "TESTING": self.LEDGER_ENV == "testing",
            "RATELIMIT_ENABLED": self.RATELIMIT_ENABLED,
            "RATELIMIT_STORAGE_URI": self.RATELIMIT_STORAGE_URI,
            "RATELIMIT_HEADERS_ENABLED": True,
        }


def _to_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be 1 or 0, not {raw!r}")


def _to_count(name: str, raw: str) -> int:
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 6:
        raise ConfigError(f"{name} must be a whole number from 0 to 999999, not {raw!r}")
    return int(value)


def _to_port(raw: str) -> int:
    port = raw.strip()
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(f"PORT must be a port number from 1 to 65535, not {raw!r}")
    return int(port)


def _to_amount(name: str, raw: str) -> Decimal:
    if name.startswith(("INVITE_REWARD_", "LOW_BALANCE_")) and raw.strip() in {"0", "0.0", "0.00"}:
        return Decimal("0.00")  # a reward may be switched off for one side; a 0 threshold never fires
    try:
        return parse_amount(raw, places=2)
    except InvalidAmount as exc:
        raise ConfigError(f"{name}: {exc}") from None


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
    """Read settings: variables set in the environment win over the `.env` file."""
    values: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)

    kwargs: dict[str, object] = {}
    for f in fields(Settings):
        if f.name not in values:
            continue
        raw = values[f.name]
        if f.name in ("HOST", "PORT") and not raw.strip():
            continue  # empty: the default
        if f.name == "PORT":
            kwargs[f.name] = _to_port(raw)
        elif f.type == "bool":
            kwargs[f.name] = _to_bool(f.name, raw)
        elif f.type == "Decimal":
            kwargs[f.name] = _to_amount(f.name, raw)
        elif f.type == "int":
            kwargs[f.name] = 0 if f.name == "GRANT_EXPIRY_DAYS" and not raw.strip() else _to_count(f.name, raw)
        else:
            kwargs[f.name] = raw.strip()
    settings = Settings(**kwargs)  # type: ignore[arg-type]
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Refuse settings that cannot run, with a message that names the variable."""
    if settings.LEDGER_ENV not in ENVIRONMENTS:
        raise ConfigError(f"LEDGER_ENV must be one of {', '.join(ENVIRONMENTS)}, not {settings.LEDGER_ENV!r}")
    try:
        ZoneInfo(settings.DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"DEFAULT_TIMEZONE {settings.DEFAULT_TIMEZONE!r} is not a known time zone") from None
    if not settings.TOPUP_MIN > 0 or settings.TOPUP_MIN > settings.TOPUP_MAX:
        raise ConfigError("TOPUP_MIN must be positive and not above TOPUP_MAX")
    if settings.TOPUP_MIN > settings.TOPUP_MAX_WECHAT:
        raise ConfigError("TOPUP_MIN must not be above TOPUP_MAX_WECHAT")
    if settings.EVENTS_URL and urlsplit(settings.EVENTS_URL).scheme not in ("https", "http"):  # any case
        raise ConfigError("EVENTS_URL must be an http(s) URL, or empty to keep events unsent")
    if settings.EVENTS_URL and len(settings.EVENTS_SECRET) < 16:
        raise ConfigError("EVENTS_SECRET must be at least 16 characters when EVENTS_URL is set (events are signed)")
    if not settings.INTERNAL_API_KEY or not settings.XORPAY_APP_SECRET or not settings.SECRET_KEY:
        raise ConfigError("SECRET_KEY, INTERNAL_API_KEY and XORPAY_APP_SECRET must not be empty")
    for name in LIMIT_SETTINGS:  # Flask-Limiter would log a bad string and then not limit at all
        try:
            if not parse_many(getattr(settings, name)):
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"{name} must be a rate limit such as 10/minute, not {getattr(settings, name)!r}"
            ) from None
    if not 1 <= len(settings.SITE_NAME) <= MAX_SITE_NAME or not settings.SITE_NAME.isprintable():
        raise ConfigError(f"SITE_NAME must be 1 to {MAX_SITE_NAME} printable characters, not {settings.SITE_NAME!r}")
    if not PASSWORD_HASHES.fullmatch(settings.PASSWORD_HASH):
        raise ConfigError(
            "PASSWORD_HASH must be werkzeug's scrypt[:n:r:p] or pbkdf2[:sha256[:iterations]],"
            f" not {settings.PASSWORD_HASH!r}"
        )
    if ":" in settings.HOST.strip("[]") and not _is_ipv6(settings.HOST.strip("[]")):
        raise ConfigError(f"HOST is an address or a name without a port (PORT says the port), not {settings.HOST!r}")
    if settings.TOPUP_MAX_PENDING < 1:
        raise ConfigError("TOPUP_MAX_PENDING must be at least 1 (else nobody could top up)")
    if settings.is_production:
        _refuse_unsafe_production(settings)


PASSWORD_HASHES = re.compile(r"scrypt(?::[0-9]+:[0-9]+:[0-9]+)?|pbkdf2(?::sha(?:256|512)(?::[0-9]+)?)?")
# What a password hash must cost in production: scrypt, or PBKDF2 with at least this many iterations.
MIN_PBKDF2_ITERATIONS = 600_000

MAX_SITE_NAME = 40  # it shares the header with the balance and the person's email on a phone

# Every limit string; each must parse (SPEC 19).
LIMIT_SETTINGS = (
    "RATELIMIT_LOGIN",
    "RATELIMIT_REGISTER",
    "RATELIMIT_TOPUP",
    "RATELIMIT_TOPUP_CHECK",
    "RATELIMIT_WEBHOOK_REFUSALS",
)
# Secrets that guard money or sessions. In production each is at least MIN_SECRET_LENGTH long, has
# at least MIN_SECRET_VARIETY different characters, and no two are equal (one leaked would give
# away the other). The variety floor refuses "x" * 32 or "password" * 4, never a generated secret:
# 32 hex characters (secrets.token_hex(16), the shortest generated form) have fewer than 8 different
# ones with a probability below 1e-7; secrets.token_urlsafe(32) and `openssl rand -hex 32` far less.
SECRET_SETTINGS = ("SECRET_KEY", "INTERNAL_API_KEY", "XORPAY_APP_SECRET", "EVENTS_SECRET", "METRICS_TOKEN")
MIN_SECRET_LENGTH = 32
MIN_SECRET_VARIETY = 8
HOW_TO_GENERATE = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
# XorPay gives its app secret; the others are ours to generate.
SECRET_ADVICE = {"XORPAY_APP_SECRET": "use the app secret XorPay gave you"}
# Addresses that must be https:// in production, and why (EVENTS_URL only when set).
HTTPS_SETTINGS = {
    "SITE_URL": "sign-in, invite links and payment pages are built on it",
    "XORPAY_NOTIFY_URL": "XorPay posts paid orders to it",
    "EVENTS_URL": "events about people's balances are posted to it",
}


def _refuse_unsafe_production(settings: Settings) -> None:
    """What runs in development but must not face the internet (SPEC 2, 19)."""
    for name, dev_value in (
        ("SECRET_KEY", DEV_SECRET_KEY),
        ("INTERNAL_API_KEY", DEV_INTERNAL_API_KEY),
        ("XORPAY_APP_SECRET", DEV_XORPAY_APP_SECRET),
    ):
        value = getattr(settings, name)
        if not value or value == dev_value:
            raise ConfigError(f"{name} must be set to a secret value in production (LEDGER_ENV=production)")
    if settings.XORPAY_SANDBOX:
        raise ConfigError("XORPAY_SANDBOX=1 is refused in production: it would accept fake payments")
    method, *rest = settings.PASSWORD_HASH.split(":")
    if method == "pbkdf2" and len(rest) == 2 and int(rest[1]) < MIN_PBKDF2_ITERATIONS:
        raise ConfigError(
            f"PASSWORD_HASH must cost at least {MIN_PBKDF2_ITERATIONS:,} PBKDF2 iterations in production"
            " (or use scrypt)"
        )
    if not settings.RATELIMIT_ENABLED:
        raise ConfigError("RATELIMIT_ENABLED=0 is refused in production: sign-in would have no limit")
    if not settings.DATABASE_URL:
        raise ConfigError("DATABASE_URL must point at PostgreSQL in production")
    given = {name: getattr(settings, name) for name in SECRET_SETTINGS if getattr(settings, name)}
    for name, value in given.items():  # the optional ones (events, metrics) only when set
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{name} must be at least {MIN_SECRET_LENGTH} characters in production")
        if len(set(value)) < MIN_SECRET_VARIETY:  # never the value in a message: logs keep them
            raise ConfigError(
                f"{name} must have at least {MIN_SECRET_VARIETY} different characters in production (else it"
                f" is easy to guess): {SECRET_ADVICE.get(name, HOW_TO_GENERATE)}"
            )
    for (one, one_value), (other, other_value) in combinations(given.items(), 2):
        if one_value == other_value:
            renew = one if other == "XORPAY_APP_SECRET" else other
            raise ConfigError(
                f"{one} and {other} must be different secrets in production (one leaked would give away the"
                f" other): for {renew}, {HOW_TO_GENERATE}"
            )
    if not _is_https_url(settings.XORPAY_API_BASE):
        raise ConfigError("XORPAY_API_BASE must be an https:// URL in production (orders and refunds travel on it)")
    for name, why in HTTPS_SETTINGS.items():
        value = getattr(settings, name)
        if (value or name != "EVENTS_URL") and not _is_https_url(value):
            raise ConfigError(f"{name} must be an https:// URL with a host in production ({why})")
    if settings.RATELIMIT_STORAGE_URI.split(":", 1)[0].strip().lower() in ("memory", ""):
        raise ConfigError(
            "RATELIMIT_STORAGE_URI=memory:// is refused in production: each server process would count alone;"
            " use redis://..."
        )


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _is_https_url(value: str) -> bool:
    """An https:// URL with a host (and a number for a port, if any)."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)
