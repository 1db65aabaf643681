"""`OAuthStorage` contract, run against the store's adapter and (as the reference) `MemoryOAuthStorage`."""

import threading
import time
from dataclasses import replace

import pytest

from core.errors import ConflictError
from core.oauth.storage import (
    ClientRegistration,
    CredentialKey,
    MemoryOAuthStorage,
    OAuthStorage,
    PendingAuthorization,
    TokenSet,
)
from core.store import Keyring, Store
from core.store.oauth import PENDING_TTL_SECONDS
from tests.fixtures.postgres import raw_execute

KEY = CredentialKey("conn", "")


@pytest.fixture(params=["duckdb", "postgresql", "memory"])
def storage(request, tmp_path) -> OAuthStorage:
    """The store's adapter on each engine, and the in-memory reference."""
    if request.param == "memory":
        return MemoryOAuthStorage()
    location = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgresql"
        else str(tmp_path / "s.duckdb")
    )
    store = Store(location, keyring=Keyring.from_file(tmp_path / "store.key"))
    request.addfinalizer(store.close)
    store.connectors.create("c", "https://rs/mcp", "oauth")
    return store.oauth_storage()


def tokens(access="at-1", refresh="rt-1", **kw):
    return TokenSet(
        access,
        refresh_token=refresh,
        issuer="https://as",
        client_id="cid",
        resource="https://rs/mcp",
        scopes=("a", "b"),
        expires_at=2e9,
        issued_at=1.7e9,
        token_endpoint="https://as/token",
        **kw,
    )


def test_tokens_round_trip(storage):
    assert storage.load_tokens(KEY) is None
    saved = storage.save_tokens(KEY, tokens(), expected_version=None)
    loaded = storage.load_tokens(KEY)
    assert loaded == saved and loaded.version == 1
    assert (loaded.access_token, loaded.refresh_token, loaded.scopes, loaded.token_endpoint) == (
        "at-1",
        "rt-1",
        ("a", "b"),
        "https://as/token",
    )


def test_no_refresh_token_round_trips_as_none(storage):
    storage.save_tokens(KEY, tokens(refresh=None), expected_version=None)
    assert storage.load_tokens(KEY).refresh_token is None


def test_compare_and_swap(storage):
    v1 = storage.save_tokens(KEY, tokens(), expected_version=0)
    with pytest.raises(ConflictError):
        storage.save_tokens(KEY, tokens(), expected_version=0)  # a row exists now
    v2 = storage.save_tokens(KEY, tokens("at-2", "rt-2"), expected_version=v1.version)
    assert v2.version == 2
    with pytest.raises(ConflictError):
        storage.save_tokens(KEY, tokens("at-stale"), expected_version=v1.version)
    assert storage.load_tokens(KEY).access_token == "at-2"
    v3 = storage.save_tokens(KEY, tokens("at-3"), expected_version=None)  # interactive: unconditional
    assert v3.version == 3


def test_stale_reader_finds_the_rotated_token_c04(storage):
    """Worker A rotates v1 -> v2; B, still holding v1, loses its CAS, re-reads and finds v2."""
    v1 = storage.save_tokens(KEY, tokens("at-1", "rt-1"), expected_version=None)
    b_view = storage.load_tokens(KEY)
    storage.save_tokens(KEY, tokens("at-2", "rt-2"), expected_version=v1.version)  # worker A
    with pytest.raises(ConflictError):
        storage.save_tokens(KEY, tokens("at-b", "rt-b"), expected_version=b_view.version)
    latest = storage.load_tokens(KEY)
    assert (latest.refresh_token, latest.version) == ("rt-2", 2)
    storage.mark_needs_reauth(
        KEY, expected_version=b_view.version, reason="invalid_grant"
    )  # stale: no effect
    assert storage.needs_reauth(KEY) is None


def test_needs_reauth_is_version_guarded_and_cleared_by_new_tokens(storage):
    v1 = storage.save_tokens(KEY, tokens(), expected_version=None)
    storage.mark_needs_reauth(KEY, expected_version=v1.version, reason="refresh token refused")
    assert storage.needs_reauth(KEY) == "refresh token refused"
    assert storage.load_tokens(KEY) is not None  # never deleted
    storage.save_tokens(KEY, tokens("fresh"), expected_version=None)
    assert storage.needs_reauth(KEY) is None


def test_two_threads_compare_and_swap_one_row_c09(storage):
    base = storage.save_tokens(KEY, tokens(), expected_version=None)
    barrier = threading.Barrier(2)
    outcome: dict[str, str] = {}

    def worker(name):
        seen = storage.load_tokens(KEY)
        barrier.wait()  # both have read v1 before either writes
        try:
            storage.save_tokens(KEY, tokens(f"at-{name}"), expected_version=seen.version)
            outcome[name] = "won"
        except ConflictError:
            outcome[name] = "lost"
            assert storage.load_tokens(KEY).version == base.version + 1  # re-read finds the winner

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcome.values()) == ["lost", "won"]
    winner = next(n for n, o in outcome.items() if o == "won")
    assert storage.load_tokens(KEY).access_token == f"at-{winner}"


def test_clients_are_kept_per_issuer_and_redirect_uri(storage):
    registration = ClientRegistration(
        "https://as1",
        "cid-1",
        "sec-1",
        "client_secret_basic",
        ("https://cb/a", "https://cb/b"),
        "dcr",
        0,
        {"client_name": "Switchboard"},
    )
    storage.save_client(registration)
    for uri in ("https://cb/a", "https://cb/b"):
        loaded = storage.get_client("https://as1", uri)
        assert (
            loaded.client_id,
            loaded.client_secret,
            loaded.redirect_uris,
            loaded.token_endpoint_auth_method,
        ) == ("cid-1", "sec-1", ("https://cb/a", "https://cb/b"), "client_secret_basic")
        assert loaded.registration["client_name"] == "Switchboard"
    assert storage.get_client("https://as2", "https://cb/a") is None  # never sent to another issuer
    storage.save_client(replace(registration, client_id="cid-2", client_secret=None))
    assert storage.get_client("https://as1", "https://cb/a").client_secret is None


def test_public_client_without_redirect_uris(storage):
    storage.save_client(ClientRegistration("https://as", "cimd-url", method="cimd"))
    assert storage.get_client("https://as", "").client_id == "cimd-url"


def pending(state="state-1", **kw):
    return PendingAuthorization(
        state, KEY, "verifier-1", "https://as", "cid", "https://cb", "https://rs/mcp", ("a",), "/back", **kw
    )


def test_pending_is_single_use(storage):
    storage.save_pending(pending(token_endpoint="https://as/token", iss_parameter_supported=True))
    taken = storage.take_pending("state-1")
    assert (taken.code_verifier, taken.key, taken.scopes, taken.return_to) == (
        "verifier-1",
        KEY,
        ("a",),
        "/back",
    )
    assert taken.token_endpoint == "https://as/token" and taken.iss_parameter_supported
    assert storage.take_pending("state-1") is None
    assert storage.take_pending("never-issued") is None


def test_pending_is_single_use_across_threads(storage):
    storage.save_pending(pending())
    results, barrier = [], threading.Barrier(8)

    def take():
        barrier.wait()
        results.append(storage.take_pending("state-1"))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1


def test_pending_expires_after_ten_minutes(store_factory):
    store = store_factory()
    storage = store.oauth_storage()
    storage.save_pending(pending(created_at=time.time() - PENDING_TTL_SECONDS - 1))
    assert storage.take_pending("state-1") is None
    assert PENDING_TTL_SECONDS == 600


def test_state_is_not_stored_in_clear(store_factory, store_location):
    store = store_factory()
    store.oauth_storage().save_pending(pending("the-state-value"))
    ((state_hash,),) = raw_execute(store_location, "SELECT state_hash FROM pending_authorizations")
    assert "the-state-value" not in state_hash and len(state_hash) == 64


def test_refresh_lock_excludes_threads(storage):
    inside, overlaps = [0], []
    lock = threading.Lock()

    def worker():
        with storage.refresh_lock(KEY):
            with lock:
                inside[0] += 1
                overlaps.append(inside[0])
            time.sleep(0.01)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlaps) == 1


def test_refresh_locks_are_per_credential(storage):
    other = CredentialKey("conn", "agent-2")
    done = threading.Event()

    def grab_other():
        with storage.refresh_lock(other):
            done.set()

    with storage.refresh_lock(KEY):
        thread = threading.Thread(target=grab_other)
        thread.start()
        assert done.wait(10)  # not blocked by the lock we hold
    thread.join()


def test_repr_hides_secrets(storage):
    storage.save_tokens(KEY, tokens("SECRET-AT", "SECRET-RT"), expected_version=None)
    assert "SECRET" not in repr(storage.load_tokens(KEY)) and "SECRET" not in repr(storage)
