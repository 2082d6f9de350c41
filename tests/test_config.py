"""Settings: environment over .env, and start-up refusals with a clear message."""

import re
import secrets
import shutil
import subprocess
from dataclasses import replace
from decimal import Decimal

import pytest

from ledger.config import DEV_SECRET_KEY, SECRET_SETTINGS, ConfigError, load_settings


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
    "SITE_URL": "https://ledger.example",
    "XORPAY_NOTIFY_URL": "https://ledger.example/api/payments/webhook",
    "SECRET_KEY": "Jq3vX8rTz1mWk6pLc9nYb4dHf7sAg2eU",
    "INTERNAL_API_KEY": "7f2c9e4a1b8d3f6e0a5c2b9d4e7f1a3c",
    "XORPAY_APP_SECRET": "40a658ab0bfd4db6b257443379aba84f",
    "RATELIMIT_STORAGE_URI": "redis://cache:6379/0",
}
EVENTS = {"EVENTS_URL": "https://saas.example/hooks", "EVENTS_SECRET": "mN5qR8tV2wX4yZ6aB9cD1eF3gH7jK0Lp"}
GENERATE = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"


def test_a_safe_production_configuration_starts():
    settings = load_settings(SAFE_PRODUCTION, env_file=None)
    assert (settings.is_production, settings.PROXY_COUNT) == (True, 0)


def test_an_events_url_is_read_whatever_the_case_of_its_scheme():
    settings = load_settings(SAFE_PRODUCTION | EVENTS | {"EVENTS_URL": "HTTPS://saas.example/hooks"}, env_file=None)
    assert settings.EVENTS_URL == "HTTPS://saas.example/hooks"


def test_a_safe_production_configuration_with_events_and_metrics_starts():
    metrics = {"METRICS_TOKEN": "Zx8Cv6Bn4Mq2Wr9Ty7Ui5Op3As1Df0Gh", "SITE_URL": "https://ledger.example:8443/app"}
    settings = load_settings(SAFE_PRODUCTION | EVENTS | metrics, env_file=None)
    assert (settings.EVENTS_URL, settings.SITE_URL) == ("https://saas.example/hooks", "https://ledger.example:8443/app")


@pytest.mark.parametrize(
    "make",
    [
        lambda: secrets.token_urlsafe(32),
        lambda: secrets.token_hex(32),  # what `openssl rand -hex 32` prints
        lambda: secrets.token_hex(16),
    ],
    ids=["token_urlsafe(32)", "token_hex(32)", "token_hex(16)"],
)
def test_generated_secrets_always_pass_the_production_checks(make):
    names = ("SECRET_KEY", "INTERNAL_API_KEY", "EVENTS_SECRET", "METRICS_TOKEN")
    for _ in range(300):
        load_settings(SAFE_PRODUCTION | EVENTS | {name: make() for name in names}, env_file=None)


def test_openssl_rand_hex_passes_the_production_checks():
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl on this machine")
    for _ in range(200):
        made = subprocess.run([openssl, "rand", "-hex", "32"], capture_output=True, text=True, check=True)
        load_settings(SAFE_PRODUCTION | {"SECRET_KEY": made.stdout.strip()}, env_file=None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"SITE_URL": "http://ledger.example"},
            "SITE_URL must be an https:// URL with a host in production"
            " (sign-in, invite links and payment pages are built on it)",
        ),
        (
            {"SITE_URL": "https://"},
            "SITE_URL must be an https:// URL with a host in production"
            " (sign-in, invite links and payment pages are built on it)",
        ),
        (
            {"SITE_URL": "ledger.example"},
            "SITE_URL must be an https:// URL with a host in production"
            " (sign-in, invite links and payment pages are built on it)",
        ),
        (
            {"XORPAY_NOTIFY_URL": "http://ledger.example/api/payments/webhook"},
            "XORPAY_NOTIFY_URL must be an https:// URL with a host in production (XorPay posts paid orders to it)",
        ),
        (
            {"SITE_URL": ""},
            "SITE_URL must be an https:// URL with a host in production"
            " (sign-in, invite links and payment pages are built on it)",
        ),
        (
            EVENTS | {"EVENTS_URL": "http://saas.example/hooks"},
            "EVENTS_URL must be an https:// URL with a host in production"
            " (events about people's balances are posted to it)",
        ),
        (
            EVENTS | {"EVENTS_URL": "https://saas.example:port/hooks"},
            "EVENTS_URL must be an https:// URL with a host in production"
            " (events about people's balances are posted to it)",
        ),
        (
            {"INTERNAL_API_KEY": SAFE_PRODUCTION["SECRET_KEY"]},
            "SECRET_KEY and INTERNAL_API_KEY must be different secrets in production"
            f" (one leaked would give away the other): for INTERNAL_API_KEY, {GENERATE}",
        ),
        (
            {"SECRET_KEY": SAFE_PRODUCTION["XORPAY_APP_SECRET"]},
            "SECRET_KEY and XORPAY_APP_SECRET must be different secrets in production"
            f" (one leaked would give away the other): for SECRET_KEY, {GENERATE}",
        ),
        (
            EVENTS | {"METRICS_TOKEN": EVENTS["EVENTS_SECRET"]},
            "EVENTS_SECRET and METRICS_TOKEN must be different secrets in production"
            f" (one leaked would give away the other): for METRICS_TOKEN, {GENERATE}",
        ),
        (
            {"SECRET_KEY": "k" * 32},
            "SECRET_KEY must have at least 8 different characters in production (else it is easy to guess):"
            f" {GENERATE}",
        ),
        (
            {"INTERNAL_API_KEY": "password" * 4},
            "INTERNAL_API_KEY must have at least 8 different characters in production (else it is easy to guess):"
            f" {GENERATE}",
        ),
        (
            {"METRICS_TOKEN": "0" * 64},
            "METRICS_TOKEN must have at least 8 different characters in production (else it is easy to guess):"
            f" {GENERATE}",
        ),
        (
            {"XORPAY_APP_SECRET": "ab" * 16},
            "XORPAY_APP_SECRET must have at least 8 different characters in production (else it is easy to guess):"
            " use the app secret XorPay gave you",
        ),
    ],
    ids=[
        "site-http",
        "site-no-host",
        "site-no-scheme",
        "notify-http",
        "site-empty",
        "events-http",
        "events-bad-port",
        "secret-key-is-internal-key",
        "secret-key-is-xorpay-secret",
        "metrics-token-is-events-secret",
        "one-character-32-times",
        "password-4-times",
        "zero-64-times",
        "xorpay-secret-two-characters",
    ],
)
def test_production_refuses_plain_http_and_weak_or_shared_secrets_naming_the_setting(change, message):
    with pytest.raises(ConfigError) as refused:
        load_settings(SAFE_PRODUCTION | change, env_file=None)
    assert str(refused.value) == message
    for name in SECRET_SETTINGS:  # a secret's value never shows in the message
        if name in change:
            assert change[name] not in str(refused.value)


@pytest.mark.parametrize("mode", ["development", "testing"])
def test_development_and_testing_keep_plain_http_and_dev_values(mode):
    environ = {
        "LEDGER_ENV": mode,
        "SITE_URL": "http://127.0.0.1:5000",
        "XORPAY_NOTIFY_URL": "http://127.0.0.1:5000/api/payments/webhook",
        "EVENTS_URL": "http://127.0.0.1:9000/hooks",
        "EVENTS_SECRET": "x" * 16,
        "METRICS_TOKEN": DEV_SECRET_KEY,  # the same as SECRET_KEY's default
    }
    settings = load_settings(environ, env_file=None)
    assert (settings.SITE_URL, settings.SECRET_KEY) == ("http://127.0.0.1:5000", DEV_SECRET_KEY)


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


def test_production_refuses_a_password_hash_cheaper_than_600000_pbkdf2_iterations():
    with pytest.raises(ConfigError) as refused:
        load_settings(SAFE_PRODUCTION | {"PASSWORD_HASH": "pbkdf2:sha256:1"}, env_file=None)
    assert str(refused.value) == (
        "PASSWORD_HASH must cost at least 600,000 PBKDF2 iterations in production (or use scrypt)"
    )
    assert load_settings(SAFE_PRODUCTION | {"PASSWORD_HASH": "pbkdf2:sha256:600000"}, env_file=None)


def test_the_addresses_follow_the_port_unless_set():
    other = load_settings({"PORT": "5001", "XORPAY_SANDBOX": "1"}, env_file=None)
    assert (other.HOST, other.PORT, other.SITE_URL, other.XORPAY_NOTIFY_URL, other.XORPAY_API_BASE) == (
        "127.0.0.1",
        5001,
        "http://127.0.0.1:5001",
        "http://127.0.0.1:5001/api/payments/webhook",
        "http://127.0.0.1:5001/sandbox/xorpay",
    )
    defaults = load_settings({"HOST": "", "PORT": "", "SITE_URL": ""}, env_file=None)
    assert (defaults.SITE_URL, defaults.XORPAY_NOTIFY_URL, defaults.XORPAY_API_BASE) == (
        "http://127.0.0.1:5000",
        "http://127.0.0.1:5000/api/payments/webhook",
        "https://xorpay.com",
    )


def test_a_wildcard_host_is_reached_on_this_machine_and_a_set_site_url_leads():
    wildcard = {"HOST": "0.0.0.0", "PORT": "8080"}  # noqa: S104 - the wildcard, as a setting
    everywhere = load_settings(wildcard, env_file=None)
    assert everywhere.SITE_URL == "http://127.0.0.1:8080"
    proxied = load_settings({"PORT": "5001", "SITE_URL": "https://pay.example/", "XORPAY_SANDBOX": "1"}, env_file=None)
    assert (proxied.SITE_URL, proxied.XORPAY_NOTIFY_URL, proxied.XORPAY_API_BASE) == (
        "https://pay.example/",
        "https://pay.example/api/payments/webhook",
        "https://pay.example/sandbox/xorpay",
    )


@pytest.mark.parametrize("port", ["0", "65536", "50a", "-1"])
def test_a_port_that_is_not_one_stops_start_up(port):
    with pytest.raises(ConfigError, match=f"PORT must be a port number from 1 to 65535, not '{port}'"):
        load_settings({"PORT": port}, env_file=None)


@pytest.mark.parametrize(("host", "site"), [("::1", "http://[::1]:5000"), ("[::1]", "http://[::1]:5000")])
def test_an_ipv6_host_is_reached_in_brackets(host, site):
    assert site == load_settings({"HOST": host}, env_file=None).SITE_URL


def test_a_host_with_a_port_stops_start_up():
    with pytest.raises(ConfigError, match="HOST is an address or a name without a port"):
        load_settings({"HOST": "127.0.0.1:5001"}, env_file=None)
