"""Settings: environment over .env, and start-up refusals with a clear message."""

import re
from dataclasses import replace
from decimal import Decimal

import pytest

from ledger.config import ConfigError, load_settings


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("TOPUP_MAX=500.00\nSITE_URL=http://from-file\n")
    settings = load_settings({"SITE_URL": "http://from-env"}, env_file=env_file)
    assert ("http://from-env", Decimal("500.00")) == (settings.SITE_URL, settings.TOPUP_MAX)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LEDGER_ENV": "production", "DATABASE_URL": "postgresql://x/y"}, "SECRET_KEY must be set"),
        (
            {
                "LEDGER_ENV": "production",
                "DATABASE_URL": "postgresql://x/y",
                "SECRET_KEY": "s",
                "INTERNAL_API_KEY": "i",
                "XORPAY_APP_SECRET": "x",
                "XORPAY_SANDBOX": "1",
            },
            "XORPAY_SANDBOX=1 is refused in production",
        ),
        ({"INTERNAL_API_KEY": ""}, "must not be empty"),
        ({"TOPUP_MIN": "abc"}, "TOPUP_MIN"),
        ({"TOPUP_MIN": "100", "TOPUP_MAX": "10"}, "TOPUP_MIN must be positive and not above TOPUP_MAX"),
        ({"TOPUP_MIN": "100", "TOPUP_MAX_WECHAT": "99.99"}, "TOPUP_MIN must not be above TOPUP_MAX_WECHAT"),
        ({"DEFAULT_TIMEZONE": "Mars/Base"}, "not a known time zone"),
        ({"XORPAY_SANDBOX": "maybe"}, "XORPAY_SANDBOX must be 1 or 0"),
        ({"LEDGER_ENV": "staging"}, "LEDGER_ENV must be one of"),
        ({"SITE_NAME": ""}, "SITE_NAME must be 1 to 40 printable characters"),
        ({"SITE_NAME": "x" * 41}, "SITE_NAME must be 1 to 40 printable characters"),
        ({"SITE_NAME": "Pixel\nForge"}, "SITE_NAME must be 1 to 40 printable characters"),
    ],
)
def test_settings_that_cannot_run_are_refused_with_the_variable_named(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ, env_file=None)


def test_production_refuses_rate_limiting_off():
    environ = {
        "LEDGER_ENV": "production",
        "DATABASE_URL": "postgresql://db/x",
        "SECRET_KEY": "s",
        "INTERNAL_API_KEY": "i",
        "XORPAY_APP_SECRET": "x",
        "RATELIMIT_ENABLED": "0",
    }
    with pytest.raises(ConfigError, match="RATELIMIT_ENABLED=0 is refused in production"):
        load_settings(environ, env_file=None)


def test_production_cookies_are_secure(settings):
    config = replace(settings, LEDGER_ENV="production").flask_config()
    assert config["SESSION_COOKIE_SECURE"] is True


SAFE_PRODUCTION = {
    "LEDGER_ENV": "production",
    "DATABASE_URL": "postgresql://db/x",
    "SECRET_KEY": "k" * 32,
    "INTERNAL_API_KEY": "i" * 32,
    "XORPAY_APP_SECRET": "40a658ab0bfd4db6b257443379aba84f",
    "RATELIMIT_STORAGE_URI": "redis://cache:6379/0",
}


def test_a_safe_production_configuration_starts():
    settings = load_settings(SAFE_PRODUCTION, env_file=None)
    assert (settings.is_production, settings.PROXY_COUNT) == (True, 0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # a limit that does not parse would be dropped by Flask-Limiter: the same as no limit at all
        ({"RATELIMIT_LOGIN": "lots"}, "RATELIMIT_LOGIN must be a rate limit such as 10/minute, not 'lots'"),
        ({"RATELIMIT_REGISTER": ""}, "RATELIMIT_REGISTER must be a rate limit"),
        ({"RATELIMIT_TOPUP": "10 a minute"}, "RATELIMIT_TOPUP must be a rate limit"),
        ({"RATELIMIT_WEBHOOK_REFUSALS": "many"}, "RATELIMIT_WEBHOOK_REFUSALS must be a rate limit"),
        ({"SECRET_KEY": "a"}, "SECRET_KEY must be at least 32 characters in production"),
        ({"INTERNAL_API_KEY": "i" * 31}, "INTERNAL_API_KEY must be at least 32 characters"),
        ({"XORPAY_APP_SECRET": "short-secret"}, "XORPAY_APP_SECRET must be at least 32 characters"),
        ({"METRICS_TOKEN": "token"}, "METRICS_TOKEN must be at least 32 characters"),
        (
            {"EVENTS_URL": "https://saas.example/hooks", "EVENTS_SECRET": "sixteen-chars-ok"},
            "EVENTS_SECRET must be at least 32 characters",
        ),
        ({"XORPAY_API_BASE": "http://xorpay.com"}, "XORPAY_API_BASE must be an https:// URL in production"),
        ({"RATELIMIT_STORAGE_URI": "memory://"}, "RATELIMIT_STORAGE_URI=memory:// is refused in production"),
        ({"RATELIMIT_STORAGE_URI": "MEMORY://"}, "RATELIMIT_STORAGE_URI=memory:// is refused in production"),
        ({"PROXY_COUNT": "one"}, "PROXY_COUNT must be a whole number"),
        ({"TOPUP_MAX_PENDING": "0"}, "TOPUP_MAX_PENDING must be at least 1"),
        ({"INVITE_REWARD_MAX_PER_MONTH": "-1"}, "INVITE_REWARD_MAX_PER_MONTH must be a whole number"),
    ],
)
def test_production_refuses_unsafe_settings_with_the_variable_named(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(SAFE_PRODUCTION | change, env_file=None)


def test_a_limit_that_does_not_parse_is_refused_in_development_too():
    with pytest.raises(ConfigError, match="RATELIMIT_LOGIN must be a rate limit"):
        load_settings({"RATELIMIT_LOGIN": "lots"}, env_file=None)
