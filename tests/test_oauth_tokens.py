"""Tokens: refresh timing, rotation, single flight across coroutines and threads, CAS, invalid_grant."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx2
import pytest

from core.errors import ConflictError, NeedsReauthorization
from core.oauth import ClientRegistration, OAuthHttp, TokenSet, refresh_tokens
from core.oauth.tokens import needs_refresh
from tests.test_oauth_fakes import AS, KEY, SERVER_URL, FakeWorld, json_response, new_storage

REGISTRATION = ClientRegistration(issuer=AS, client_id="client-1", redirect_uris=("x",))


@pytest.fixture(params=["memory", "duckdb"])
def make_storage(request: pytest.FixtureRequest, tmp_path):
    """Race tests run against MemoryOAuthStorage and the DuckDB store's OAuthStorage."""
    if request.param == "memory":
        return new_storage
    from core.store.crypto import Keyring
    from core.store.db import Store

    store = Store(tmp_path / "store.duckdb", keyring=Keyring.generate())
    return store.oauth_storage


def seeded(world: FakeWorld, storage, *, expires_in: float = -10, refresh: bool = True) -> TokenSet:
    """Store a credential whose access token is already expired, with an active refresh token."""
    refresh_token = world._new_refresh() if refresh else None
    now = time.time()
    tokens = TokenSet(
        access_token="at-old",
        refresh_token=refresh_token,
        expires_at=now + expires_in,
        issued_at=now - 3600,
        issuer=AS,
        client_id="client-1",
        resource=SERVER_URL,
        token_endpoint=AS + "/token",
        scopes=("a",),
    )
    return storage.save_tokens(KEY, tokens, expected_version=None)


@pytest.mark.parametrize(
    ("lifetime", "remaining", "refresh"),
    [
        (3600, 3000, False),
        (3600, 301, False),
        (3600, 299, True),  # ordinary tokens: 5 minutes ahead
        (120, 61, False),
        (120, 59, True),  # short-lived: half the lifetime
        (10, 6, False),
        (10, 4, True),
    ],
)
def test_refresh_timing(lifetime: float, remaining: float, refresh: bool) -> None:
    now = 1_000_000.0
    tokens = TokenSet("a", issued_at=now - (lifetime - remaining), expires_at=now + remaining)
    assert needs_refresh(tokens, now) is refresh


def test_no_expiry_never_refreshes_ahead() -> None:
    assert needs_refresh(TokenSet("a", expires_at=None), time.time() + 10**9) is False


async def test_refresh_rotates_persists_and_keeps_scopes_the_answer_omits(make_storage) -> None:
    """Against the sample AS in tests/test_oauth_flow_live.py too; its answers always name the scope,
    so keeping the granted scopes when an answer names none is checked here."""
    world = FakeWorld()
    storage = make_storage()
    stale = seeded(world, storage)
    fresh = await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=stale)
    assert fresh.refresh_token != stale.refresh_token and storage.load_tokens(KEY) == fresh
    assert fresh.version == stale.version + 1 and fresh.scopes == ("a",)
    form = world.to("/token")[0].form
    assert form["resource"] == SERVER_URL and "scope" not in form and form["grant_type"] == "refresh_token"


async def test_c07_no_rotation_keeps_the_old_refresh_token(make_storage) -> None:
    world = FakeWorld(rotate_refresh_tokens=False)
    storage = make_storage()
    stale = seeded(world, storage)
    fresh = await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=stale)
    again = await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=fresh, rejected=True)
    assert fresh.refresh_token == again.refresh_token == stale.refresh_token
    assert [r.form["refresh_token"] for r in world.to("/token")] == [stale.refresh_token] * 2


async def test_c04_stale_reader_uses_the_rotated_token_and_never_wipes_it(make_storage) -> None:
    world = FakeWorld()
    storage = make_storage()
    v1 = seeded(world, storage)
    v2 = await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=v1)  # worker A rotates
    # Worker B still holds v1 and the store answers it v1 at first (a reader that raced the write).
    loads = iter([v1, v1])
    original = storage.load_tokens
    storage.load_tokens = lambda key: next(loads, None) or original(key)  # type: ignore[method-assign]
    result = await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=v1)
    assert result == v2 and original(KEY) == v2 and storage.needs_reauth(KEY) is None
    assert world.to("/token")[-1].form["refresh_token"] == v1.refresh_token  # the invalid_grant attempt


async def test_invalid_grant_for_the_stored_token_marks_needs_reauth(make_storage) -> None:
    world = FakeWorld()
    storage = make_storage()
    stale = seeded(world, storage)
    world.refresh_tokens[stale.refresh_token] = "revoked"
    with pytest.raises(NeedsReauthorization):
        await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=stale)
    assert storage.needs_reauth(KEY) and storage.load_tokens(KEY) == stale  # kept, never deleted


async def test_no_refresh_token_means_needs_reauth(make_storage) -> None:
    world = FakeWorld()
    storage = make_storage()
    stale = seeded(world, storage, refresh=False)
    with pytest.raises(NeedsReauthorization, match="no refresh token"):
        await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=stale)
    assert not world.to("/token")


async def test_c06_interactive_authorization_wins_over_a_refresh_in_flight(make_storage) -> None:
    world = FakeWorld()
    storage = make_storage()
    stale = seeded(world, storage)
    step_up = replace(stale, access_token="at-step-up", refresh_token="rt-step-up", scopes=("a", "b"))

    def commit_step_up_first(request: httpx2.Request) -> httpx2.Response:
        storage.save_tokens(KEY, step_up, expected_version=None)  # lands while the refresh is in flight
        return world.handle(request)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(commit_step_up_first))
    result = await refresh_tokens(storage, KEY, OAuthHttp(client), REGISTRATION, stale=stale)
    assert result.access_token == "at-step-up" and storage.load_tokens(KEY).access_token == "at-step-up"


async def test_cas_conflict_is_reported_by_the_storage(make_storage) -> None:
    storage = make_storage()
    first = storage.save_tokens(KEY, TokenSet("a"), expected_version=None)
    with pytest.raises(ConflictError):
        storage.save_tokens(KEY, TokenSet("b"), expected_version=first.version - 1)


async def test_token_endpoint_failure_releases_the_lock(make_storage) -> None:
    world = FakeWorld()
    storage = make_storage()
    stale = seeded(world, storage)
    world.overrides[("POST", AS + "/token")] = json_response(503, {"error": "temporarily_unavailable"})
    with pytest.raises(Exception, match="temporarily_unavailable"):
        await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=stale)
    world.overrides.clear()
    fresh = await refresh_tokens(storage, KEY, world.http(), REGISTRATION, stale=stale)  # lock was released
    assert fresh.access_token != stale.access_token
