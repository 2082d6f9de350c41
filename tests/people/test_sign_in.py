"""Passwords (SPEC 9): scrypt by default, as production hashes them. The rest of the suite signs in
with a fast hash (PASSWORD_HASH in tests/conftest.py); these tests are scrypt's own."""

from collections.abc import Iterator

import pytest

from ledger.config import ConfigError, load_settings
from ledger.errors import InvalidCredentials
from ledger.services.context import SYSTEM
from ledger.services.people import sign_in
from tests.factories import FAST_PASSWORD_HASH


@pytest.fixture
def scrypt() -> Iterator[None]:
    sign_in.use_password_hash("scrypt")
    yield
    sign_in.use_password_hash(FAST_PASSWORD_HASH)


def test_a_password_is_hashed_with_scrypt_and_checks(session, scrypt):
    user = sign_in.register_user(session, email="scrypt@example.com", password="correct-horse-42", ctx=SYSTEM)
    assert user.password_hash.startswith("scrypt:32768:8:1$")
    found = sign_in.authenticate(session, email="SCRYPT@example.com", password="correct-horse-42", ctx=SYSTEM)
    assert found.id == user.id
    with pytest.raises(InvalidCredentials):
        sign_in.authenticate(session, email="scrypt@example.com", password="wrong-horse-42", ctx=SYSTEM)


def test_a_password_hashed_one_way_still_checks_after_the_method_changes(session, scrypt):
    user = sign_in.register_user(session, email="before@example.com", password="correct-horse-42", ctx=SYSTEM)
    sign_in.use_password_hash(FAST_PASSWORD_HASH)
    assert sign_in.authenticate(session, email="before@example.com", password="correct-horse-42", ctx=SYSTEM) == user


def test_scrypt_is_the_default_and_production_refuses_a_cheap_hash():
    assert load_settings({}, env_file=None).PASSWORD_HASH == "scrypt"
    with pytest.raises(ConfigError, match="PASSWORD_HASH must be werkzeug's scrypt"):
        load_settings({"PASSWORD_HASH": "md5"}, env_file=None)
