"""The operators repository (`--auth basic`) on both engines: an operator is saved with a role and an
encrypted Argon2id hash, listed without it, their hash replaced only by compare and swap, removed;
rotating the store key re-encrypts the hashes."""

from __future__ import annotations

import pytest

from core.errors import NotFoundError
from core.roles import Role
from core.signin.passwords import hash_password, password_matches
from tests.fixtures.postgres import raw_execute


@pytest.fixture
def store(store_factory):
    """On each engine (see tests/fixtures/postgres.py)."""
    return store_factory()


def test_operators_are_saved_listed_and_removed_and_only_an_encrypted_hash_is_kept(store, store_location):
    encoded = hash_password("ada's long password")
    ada = store.operators.save("ada", Role.ADMIN, encoded)
    store.operators.save("bob", Role.VIEWER, hash_password("bob's long password"))
    assert (ada.name, ada.role) == ("ada", "admin")
    assert [(o.name, o.role) for o in store.operators.list()] == [("ada", "admin"), ("bob", "viewer")]
    assert "password" not in repr(store.operators.list()) and "argon2" not in repr(store.operators.list())
    login = store.operators.login_of("ada")
    assert login.role is Role.ADMIN and password_matches(login.password_hash, "ada's long password")
    assert store.operators.login_of("nobody") is None
    (stored,) = raw_execute(store_location, "SELECT password_hash FROM operators WHERE name = 'ada'")[0]
    assert b"argon2" not in bytes(stored) and encoded.encode() not in bytes(stored)

    again = store.operators.save("ada", Role.OPERATOR, hash_password("ada's new long password"))
    assert again.created_at == ada.created_at and again.updated_at >= ada.updated_at
    login = store.operators.login_of("ada")
    assert login.role is Role.OPERATOR and password_matches(login.password_hash, "ada's new long password")

    store.operators.delete("bob")
    with pytest.raises(NotFoundError, match="no operator 'bob'"):
        store.operators.delete("bob")
    assert [o.name for o in store.operators.list()] == ["ada"]


def test_a_hash_is_replaced_only_while_it_is_still_the_one_read(store):
    first, second = hash_password("the first long password"), hash_password("the first long password")
    store.operators.save("ada", Role.ADMIN, first)
    assert store.operators.replace_hash("ada", first, second)
    assert not store.operators.replace_hash("ada", first, hash_password("a racing long password"))
    assert store.operators.login_of("ada").password_hash == second
    assert not store.operators.replace_hash("nobody", first, second)


def test_rotating_the_key_reencrypts_the_operators_hashes(store, store_location):
    encoded = hash_password("ada's long password")
    store.operators.save("ada", Role.ADMIN, encoded)
    (before,) = raw_execute(store_location, "SELECT password_hash FROM operators")[0]
    report = store.keys.rotate()
    (after,) = raw_execute(store_location, "SELECT password_hash FROM operators")[0]
    assert report.reencrypted >= 1 and bytes(after) != bytes(before)
    assert store.operators.login_of("ada").password_hash == encoded


def test_an_ended_session_is_refused_until_its_cookie_expires_and_only_its_hash_is_kept(
    store, store_location, monkeypatch
):
    import time

    store.operators.end_session("session-id-one", until=time.time() + 60)
    store.operators.end_session("session-id-one", until=time.time() + 60)  # twice: no error
    assert store.operators.ended_sessions(["session-id-one", "session-id-two"]) == {"session-id-one"}
    assert store.operators.ended_sessions([]) == set()
    rows = raw_execute(store_location, "SELECT session_hash FROM ended_sessions")
    assert len(rows) == 1 and "session-id-one" not in str(rows)

    store.operators.end_session("session-id-two", until=time.time() - 1)  # already expired: pruned next
    store.operators.end_session("session-id-three", until=time.time() + 60)
    assert len(raw_execute(store_location, "SELECT session_hash FROM ended_sessions")) == 2
