"""Refresh-rotation and shared-operation races through the services, against the SDK sample AS
(strict rotation; presenting a used refresh token is a reuse event that revokes the family).

Already covered elsewhere (not repeated here): single flight and C-04/C-06/C-07/C-09 on the OAuth
module with a fake AS and both storages (tests/test_oauth_tokens.py); store-level CAS and a fake
refresh across processes (tests/test_store_concurrency.py); one initialize per McpClient
(tests/test_mcp_client_faults.py). Here the whole path runs: services → provider → refresh →
DuckDB store, with the real AS counting what it saw, including two OS processes (C-03).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.net import NetworkPolicy
from core.oauth.storage import CredentialKey
from core.services import Switchboard

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
REDIRECT = "http://127.0.0.1:9/oauth/callback"
SPAWN = multiprocessing.get_context("spawn")


def _open(path: str) -> Switchboard:
    return Switchboard.open(path, policy=LOOPBACK, redirect_uri=REDIRECT)


async def _authorize(service: Switchboard, connector: str, agent: str | None = None) -> None:
    url = await service.start_authorization(connector, agent)
    async with httpx2.AsyncClient() as browser:
        location = (await browser.get(url)).headers["location"]
    outcome = await service.complete_authorization(dict(parse_qsl(urlsplit(location).query)))
    assert outcome.ok, outcome.message


async def _key(service: Switchboard, connector: str, agent: str | None = None) -> CredentialKey:
    conn = await service.context.connector(connector)
    return CredentialKey(
        conn.id, (await service.context.db(service.store.agents.named, agent)).id if agent else ""
    )


def _expire_stored(service: Switchboard, key: CredentialKey) -> None:
    """Make the stored access token look expired to the client (the proactive-refresh path)."""
    storage = service.context.oauth_storage
    tokens = storage.load_tokens(key)
    storage.save_tokens(
        key,
        replace(tokens, expires_at=time.time() - 5, issued_at=time.time() - 3600),
        expected_version=tokens.version,
    )


async def _connected(sample_server_factory, store_path: str, *, per_agent: tuple[str, ...] = ()):
    server = sample_server_factory("sdk_oauth")
    service = _open(store_path)
    await service.add_connector("oauth", server.url, "oauth", "per_agent" if per_agent else "shared")
    for agent in per_agent:
        await service.add_agent(agent)
        server.next_subject(agent)
        await _authorize(service, "oauth", agent)
    if not per_agent:
        await _authorize(service, "oauth")
    await service.aclose()
    server.reset()
    return server


# --- C-01 -------------------------------------------------------------------------------------------------


async def test_c01_fifty_concurrent_calls_refresh_once(sample_server_factory, store_path) -> None:
    """The 401 path: the client still thinks the token valid, the server says it expired. (The
    proactive path, expiry known to the client, runs in the C-03 test with two processes.)"""
    server = await _connected(sample_server_factory, store_path)
    service = _open(store_path)
    key = await _key(service, "oauth")
    server.expire_tokens()
    before = service.context.oauth_storage.load_tokens(key)
    results = await asyncio.gather(*(service.call_tool("oauth", "whoami", {}) for _ in range(50)))
    assert all(not r.is_error for r in results)
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    after = service.context.oauth_storage.load_tokens(key)
    assert after.refresh_token != before.refresh_token and after.version == before.version + 1
    assert sum(counters["tool_calls"]["user-1"].values()) == 50
    await service.aclose()


# --- C-02 -------------------------------------------------------------------------------------------------


async def test_c02_two_agents_refresh_their_own_tokens(sample_server_factory, store_path) -> None:
    server = await _connected(sample_server_factory, store_path, per_agent=("ada", "bob"))
    service = _open(store_path)
    keys = {a: await _key(service, "oauth", a) for a in ("ada", "bob")}
    before = {a: service.context.oauth_storage.load_tokens(k) for a, k in keys.items()}
    server.expire_tokens()
    results = await asyncio.gather(
        *(service.call_tool("oauth", "whoami", {}, agent=a) for a in ("ada", "bob") for _ in range(5))
    )
    assert all(not r.is_error for r in results)
    assert all(r.result["structuredContent"]["subject"] == r.agent for r in results)  # tokens never cross
    counters = server.counters()
    assert counters["refresh_requests"] == 2 and counters["reuse_events"] == 0
    after = {a: service.context.oauth_storage.load_tokens(k) for a, k in keys.items()}
    assert after["ada"].refresh_token != after["bob"].refresh_token
    assert all(after[a].refresh_token != before[a].refresh_token for a in keys)
    await service.aclose()


# --- C-04 -------------------------------------------------------------------------------------------------


async def test_c04_a_stale_services_instance_uses_the_rotated_token(
    sample_server_factory, store_path
) -> None:
    """Two services instances (two dashboards/notebooks) hold the same credential in memory; one
    rotates it, the other still has v1 and gets a 401: it must pick up v2, not refresh with the
    used refresh token (which would be a reuse event and kill the family)."""
    server = await _connected(sample_server_factory, store_path)
    first, second = _open(store_path), _open(store_path)
    for service in (first, second):  # both cache the v1 access token
        assert not (await service.call_tool("oauth", "whoami", {})).is_error
    server.expire_tokens()
    assert not (await first.call_tool("oauth", "whoami", {})).is_error  # rotates v1 -> v2
    assert not (await second.call_tool("oauth", "whoami", {})).is_error  # 401 with v1 -> reads v2
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    key = await _key(second, "oauth")
    assert second.context.oauth_storage.needs_reauth(key) is None
    for service in (first, second):
        await service.aclose()


# --- C-03: two OS processes -----------------------------------------------------------------------------


def _call_in_a_process(store_path: str, key_file: str, at_lock, results) -> None:
    """One process's call. Each process reads the stale tokens, then waits at `at_lock` (a barrier of
    both) just before the cross-process refresh lock: so both have read the stale tokens before
    either can refresh, and the one that gets the lock second must see, by its re-check under the
    lock, that the other already refreshed. Without the barrier the window opened in about half the
    runs (a removed re-check was caught 3 times in 6); with it, in every run."""
    os.environ["SWITCHBOARD_KEY_FILE"] = key_file
    os.environ.pop("SWITCHBOARD_KEY", None)
    try:
        from core.oauth import tokens

        real_lock = tokens.storage_lock
        reached: list[bool] = []

        @contextlib.asynccontextmanager
        async def lock_after_both_read(storage, key):
            if not reached:  # the refresh of this call; later locks (none expected) pass straight on
                reached.append(True)
                await asyncio.to_thread(at_lock.wait, 60)
            async with real_lock(storage, key):
                yield

        tokens.storage_lock = lock_after_both_read
        service = _open(store_path)

        async def go() -> str:
            try:
                outcome = await service.call_tool("oauth", "whoami", {})
                return outcome.result["structuredContent"]["subject"]
            finally:
                await service.aclose()

        subject = asyncio.run(go())
        results.put(("ok", subject) if reached else ("error", "the refresh lock was never reached"))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.parametrize("path", ["401 from the server", "expiry known to the client"])
def test_c03_two_processes_refresh_one_credential_once(sample_server_factory, store_path, path) -> None:
    server = asyncio.run(_connected(sample_server_factory, store_path))
    service = _open(store_path)
    key = asyncio.run(_key(service, "oauth"))
    server.expire_tokens()
    if path == "expiry known to the client":
        _expire_stored(service, key)
    before = service.context.oauth_storage.load_tokens(key)
    at_lock, results = SPAWN.Barrier(2), SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=_call_in_a_process, args=(store_path, os.environ["SWITCHBOARD_KEY_FILE"], at_lock, results)
        )
        for _ in range(2)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(60)
    assert outcomes == [("ok", "user-1"), ("ok", "user-1")], outcomes
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    after = service.context.oauth_storage.load_tokens(key)
    assert after.version == before.version + 1 and after.refresh_token != before.refresh_token


# --- C-10: shared initialize and shared registration ------------------------------------------------------


async def test_c10_concurrent_calls_on_a_fresh_services_share_one_initialize(
    bearer_server, store_path
) -> None:
    setup = _open(store_path)
    await setup.add_connector("render", bearer_server.url, "bearer")
    await setup.set_secret("render", bearer_server.keys["alice"])
    await setup.aclose()
    bearer_server.reset()
    service = _open(store_path)
    results = await asyncio.gather(
        *(service.call_tool("render", "echo", {"message": f"m{i}"}) for i in range(20))
    )
    assert all(not r.is_error for r in results)
    methods = bearer_server.counters()["rpc_methods"]
    assert methods.get("initialize", 0) + methods.get("server/discover", 0) == 1, methods
    assert len(service._pool.slots()) == 1
    await service.aclose()


async def test_c10_concurrent_authorizations_register_once(sample_server_factory, store_path) -> None:
    server = sample_server_factory("sdk_oauth")
    service = _open(store_path)
    await service.add_connector("oauth", server.url, "oauth", "per_agent")
    agents = [f"agent-{i}" for i in range(6)]
    for agent in agents:
        await service.add_agent(agent)
    urls = await asyncio.gather(*(service.start_authorization("oauth", a) for a in agents))
    assert len({dict(parse_qsl(urlsplit(u).query))["state"] for u in urls}) == len(agents)
    assert server.counters()["registrations"] == 1
    assert len({dict(parse_qsl(urlsplit(u).query))["client_id"] for u in urls}) == 1
    await asyncio.gather(*(service.connect("oauth", a) for a in agents))
    assert server.counters()["registrations"] == 1
    await service.aclose()
