"""Crash durability: a child process is driven to a critical point of a sync or a token refresh and
killed with SIGKILL there; the parent reopens the store and checks what survived.

Decisions asserted here:

* A sync killed inside its transaction leaves the previous tool list current and complete; a sync
  killed after its commit (WAL not yet checkpointed: a second connection keeps the instance open)
  is fully visible after reopening (WAL replay).
* A refresh killed after the authorization server rotated the refresh token but before our commit
  keeps the OLD refresh token stored: that is the only truthful state (the new one was never saved).
  With a strictly rotating AS it is now dead, so the next use makes exactly one refresh request, gets
  `invalid_grant`, marks the credential `needs_reauth` (never deletes it) and raises an auth error:
  no retry loop, and the refresh lock the dead process held is free.
* A refresh killed right after its commit keeps the rotated tokens: the next process uses them with
  no further refresh and no reuse event.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import duckdb
import httpx2
import pytest

from core.errors import AuthError
from core.net import NetworkPolicy
from core.oauth.storage import CredentialKey
from core.services import Switchboard

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
REDIRECT = "http://127.0.0.1:9/oauth/callback"
SPAWN = multiprocessing.get_context("spawn")
CHANGED = "a new description that must not be half-visible"


def _open(path: str) -> Switchboard:
    return Switchboard.open(path, policy=LOOPBACK, redirect_uri=REDIRECT)


def _stop_here(ready) -> None:
    ready.set()
    time.sleep(3600)  # the parent kills us here


# --- the child ----------------------------------------------------------------------------------------


def _child(point: str, store_path: str, key_file: str, ready) -> None:
    os.environ["SWITCHBOARD_KEY_FILE"] = key_file
    os.environ.pop("SWITCHBOARD_KEY", None)
    keeper = None
    if point in ("sync_committed", "refresh_committed") and "://" not in store_path:
        keeper = duckdb.connect(store_path)  # noqa: F841 - keeps the instance open: commits stay in the WAL
    if point == "sync_in_transaction":
        from core.store.repositories.tools import ToolRepository

        original = ToolRepository.record

        def record(self, *args, **kwargs):
            result = original(self, *args, **kwargs)  # every row written, nothing committed yet
            _stop_here(ready)
            return result

        ToolRepository.record = record
    elif point == "refresh_rotated":
        from core.oauth import tokens

        original_request = tokens.request_token

        async def request_token(*args, **kwargs):
            fresh = await original_request(*args, **kwargs)  # the AS has rotated the refresh token
            _stop_here(ready)
            return fresh

        tokens.request_token = request_token
    elif point == "refresh_committed":
        from core.store.oauth import StoreOAuthStorage

        original_save = StoreOAuthStorage.save_tokens

        def save_tokens(self, *args, **kwargs):
            saved = original_save(self, *args, **kwargs)
            _stop_here(ready)
            return saved

        StoreOAuthStorage.save_tokens = save_tokens

    async def go() -> None:
        service = _open(store_path)
        if point.startswith("sync"):
            result = await service.sync("tools")
            assert result.ok, result.error
            if point == "sync_committed":
                _stop_here(ready)
        else:
            await service.call_tool("oauth", "whoami", {})

    asyncio.run(go())


def _kill_at(point: str, store_path: str) -> None:
    ready = SPAWN.Event()
    process = SPAWN.Process(
        target=_child, args=(point, store_path, os.environ["SWITCHBOARD_KEY_FILE"], ready)
    )
    process.start()
    try:
        assert ready.wait(120), f"the child never reached {point} (exit code {process.exitcode})"
        os.kill(process.pid, signal.SIGKILL)
        process.join(30)
        assert process.exitcode == -signal.SIGKILL
    finally:
        if process.is_alive():
            process.kill()


# --- sync ---------------------------------------------------------------------------------------------


async def _synced(plain_server, store_path: str) -> list[dict]:
    service = _open(store_path)
    await service.add_connector("tools", plain_server.url, "none")
    assert (await service.sync("tools")).ok
    before = await service.tool_list("tools")
    await service.aclose()
    plain_server.set_tool_description("echo", CHANGED)
    return before


async def test_sync_killed_inside_its_transaction_leaves_the_previous_list(plain_server, store_path) -> None:
    before = await _synced(plain_server, store_path)
    _kill_at("sync_in_transaction", store_path)
    service = _open(store_path)
    assert await service.tool_list("tools") == before  # no half-written list, nothing lost
    assert await service.drift("tools") == []
    assert (await service.sync("tools")).ok  # the store is usable: no lock left behind
    descriptions = {t["name"]: t["description"] for t in await service.tool_list("tools")}
    assert descriptions["echo"] == CHANGED and len(descriptions) == len(before)
    await service.aclose()


async def test_sync_killed_after_its_commit_is_durable(plain_server, store_path) -> None:
    before = await _synced(plain_server, store_path)
    _kill_at("sync_committed", store_path)
    if "://" not in store_path:  # DuckDB: committed, not checkpointed (PostgreSQL's WAL is the server's)
        wal = store_path + ".wal"
        assert os.path.exists(wal) and os.path.getsize(wal) > 0
    service = _open(store_path)
    after = {t["name"]: t["description"] for t in await service.tool_list("tools")}
    assert after["echo"] == CHANGED and len(after) == len(before)
    assert [c["name"] for c in await service.drift("tools")] == ["echo"]
    await service.aclose()


# --- token refresh -----------------------------------------------------------------------------------


async def _authorized(sample_server_factory, store_path: str):
    server = sample_server_factory("sdk_oauth")
    service = _open(store_path)
    await service.add_connector("oauth", server.url, "oauth")
    url = await service.start_authorization("oauth")
    async with httpx2.AsyncClient() as browser:
        location = (await browser.get(url)).headers["location"]
    assert (await service.complete_authorization(dict(parse_qsl(urlsplit(location).query)))).ok
    key = CredentialKey((await service.context.connector("oauth")).id, "")
    storage = service.context.oauth_storage
    tokens = storage.load_tokens(key)
    # The client knows the access token expired: the next call refreshes first.
    tokens = storage.save_tokens(
        key,
        replace(tokens, expires_at=time.time() - 5, issued_at=time.time() - 3600),
        expected_version=tokens.version,
    )
    await service.aclose()
    server.reset()
    return server, key, tokens


async def test_refresh_killed_before_its_commit_keeps_the_old_token_and_fails_closed(
    sample_server_factory, store_path
) -> None:
    server, key, before = await _authorized(sample_server_factory, store_path)
    _kill_at("refresh_rotated", store_path)
    assert server.counters()["refresh_requests"] == 1  # the AS rotated...
    service = _open(store_path)
    storage = service.context.oauth_storage
    stored = storage.load_tokens(key)
    assert (stored.version, stored.refresh_token) == (
        before.version,
        before.refresh_token,
    )  # ...we never saved it
    with pytest.raises(AuthError):
        await service.call_tool("oauth", "whoami", {})
    counters = server.counters()
    assert counters["refresh_requests"] == 2  # one attempt with the dead token, no loop
    assert storage.needs_reauth(key) is not None
    assert storage.load_tokens(key).refresh_token == before.refresh_token  # marked, never deleted
    await service.aclose()


async def test_refresh_killed_after_its_commit_keeps_the_rotated_token(
    sample_server_factory, store_path
) -> None:
    server, key, before = await _authorized(sample_server_factory, store_path)
    _kill_at("refresh_committed", store_path)
    service = _open(store_path)
    storage = service.context.oauth_storage
    stored = storage.load_tokens(key)
    assert stored.version == before.version + 1 and stored.refresh_token != before.refresh_token
    assert not (await service.call_tool("oauth", "whoami", {})).is_error
    assert server.counters()["refresh_requests"] == 1  # the rotated access token is used as is
    server.expire_tokens()
    assert not (
        await service.call_tool("oauth", "whoami", {})
    ).is_error  # and the rotated refresh token works
    counters = server.counters()
    assert counters["refresh_requests"] == 2 and counters["reuse_events"] == 0
    assert storage.needs_reauth(key) is None
    await service.aclose()
