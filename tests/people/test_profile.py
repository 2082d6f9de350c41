"""The profile service: which usernames are one name, and names that migration 0017 set aside."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger.errors import UsernameTaken
from ledger.services.context import SYSTEM
from ledger.services.people.profile import update_profile, username_key, username_shape
from tests.factories import UserFactory


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("admin", "adrnin"),  # UTS #39 reads "m" as "rn"
        ("\u0251dmin", "adrnin"),  # Latin small alpha
        ("adm\u0131n", "adrnin"),  # dotless i
        ("ＡＤＭＩＮ", "adrnin"),  # full width, capitals
        ("\u0430\u0441\u0435", "ace"),  # Cyrillic
        ("paypa1", "paypal"),
        ("l0ve", "love"),  # the skeleton's capital O, folded again
        ("Straße", "strasse"),
        ("张三abc", "张三abc"),
    ],
)
def test_the_key_of_a_username_is_its_folded_confusables_skeleton(name, key):
    assert username_key(name) == key


@pytest.mark.parametrize(("one", "other"), [("alice", "alicia"), ("Иван", "ivan"), ("bob_1", "bob-1"), ("ab", "a.b")])
def test_names_that_do_not_look_alike_keep_different_keys(one, other):
    assert username_key(one) != username_key(other)


def test_one_checker_gives_the_same_keys_from_many_threads_at_once():
    names = [
        f"{stem}{n}" for n in range(300) for stem in ("\u0251dmin", "\u0430\u0441\u0435", "paypa", "Straße", "张三")
    ]
    alone = [username_key(name) for name in names]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(4):
            assert list(pool.map(username_key, names, chunksize=7)) == alone


def _set_aside(name: str, key: str):
    """A person whose look-alike name migration 0017 kept under keys of its own."""
    user_id = uuid.uuid4()
    shape = username_shape(name)
    return UserFactory(id=user_id, username=name, username_key=f"{key} {user_id}", username_shape=f"{shape} {user_id}")


def _save(session, user, username: str, full_name: str | None = None):
    return update_profile(session, user, username=username, full_name=full_name, website="", timezone="", ctx=SYSTEM)


def test_a_name_set_aside_by_the_migration_keeps_working_for_its_owner(session):
    UserFactory(username="admin")
    later = _set_aside("\u0251dmin", "adrnin")
    _save(session, later, "\u0251dmin", full_name="Later")
    session.refresh(later)
    assert (later.username, later.username_key, later.username_shape, later.full_name) == (
        "\u0251dmin",
        f"adrnin {later.id}",
        f"adrnin {later.id}",
        "Later",
    )


def test_nobody_else_can_take_a_name_set_aside_even_when_the_first_owner_leaves_it(session):
    first = UserFactory(username="admin")
    later = _set_aside("\u0251dmin", "adrnin")
    newcomer = UserFactory()
    _save(session, first, "root")
    session.refresh(first)
    with pytest.raises(UsernameTaken):
        _save(session, newcomer, "admin")
    session.refresh(newcomer)
    assert (newcomer.username, newcomer.username_key) == (None, None)
    _save(session, later, "admin")  # its owner may take the plain spelling once it is free
    session.refresh(later)
    assert (later.username, later.username_key, later.username_shape) == ("admin", "adrnin", "adrnin")


@pytest.mark.parametrize(("first", "look_alike"), [("Paypal", "PaypaI"), ("Ivan", "lvan"), ("ALICE", "AL1CE")])
def test_a_name_that_looks_like_a_taken_one_as_pages_show_it_is_refused(session, first, look_alike):
    # Pages show a username as it was written, capitals included: "PaypaI" (capital i) reads "Paypal".
    UserFactory(username=first)
    newcomer = UserFactory()
    with pytest.raises(UsernameTaken):
        _save(session, newcomer, look_alike)
