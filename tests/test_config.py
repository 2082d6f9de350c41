"""Settings: environment over .env, and start-up refusals with a clear message."""

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
