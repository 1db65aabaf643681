"""More refresh races through the services against the SDK sample AS (strict rotation, family
revocation on reuse): C-05, C-06, C-08, C-11, and DCR de-duplicated across OS processes (C-10).

Already covered below the services (not repeated here): C-06 with a fake AS on both storages
(tests/test_oauth_tokens.py), a failing token endpoint releasing the lock (same file), and C-11 on the
store with a synthetic refresher in another thread or process (tests/test_store_concurrency.py).

Faults the sample AS cannot produce itself (answer, then drop the connection; hang; hold the answer
while something else happens) come from `TokenProxy`, a small proxy in front of its token endpoint.
A credential is refreshed where its stored `token_endpoint` says, so the tests point that at the
proxy; everything else (discovery, authorization, the MCP server) is the real sample server. The
grace-window variant of C-05 has the proxy answer a repeated refresh token with the first answer,
which is what an AS with a grace window does. The token timeout is the shared HTTP client's default
timeout; one C-08 test shortens it (patching `create_http_client`), never the call timeout.

No assertion is on time: the tests count requests at the proxy and the AS and check outcomes, and
every wait has a generous bound (`BOUND`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import threading
import time
from dataclasses import replace
from typing import Self
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx2
import pytest

import core.net.client
from core.errors import AuthRequired, NeedsReauthorization, RequestTimeout, SwitchboardError
from core.net import NetworkPolicy
from core.oauth.storage import CredentialKey
from core.services import Switchboard
from tests.test_races import REDIRECT, _authorize, _connected, _key

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
SPAWN = multiprocessing.get_context("spawn")
BOUND = 60.0  # generous upper bound for anything that must finish; never a timing assertion


def _open(path: str, **options) -> Switchboard:
    return Switchboard.open(path, policy=LOOPBACK, redirect_uri=REDIRECT, **options)


class TokenProxy:
    """A fault-injecting HTTP/1.1 proxy in front of the sample AS's token endpoint.

    Each POST takes the next fault of `plan` (then `default`):
      "forward"  pass the request on and the answer back;
      "drop"     pass the request on, let the AS answer (and rotate), then close the connection
                 without answering;
      "hang"     neither pass it on nor answer (until the proxy closes);
      "hold"     pass it on, then keep the AS's answer until `release` is set.
    `grace=True` emulates an AS grace window: a refresh token presented again gets the answer it got
    the first time, without reaching the AS.
    """

    def __init__(self, upstream_origin: str, *, default: str = "forward", grace: bool = False) -> None:
        self.upstream = upstream_origin.rstrip("/")
        self.plan: list[str] = []
        self.default = default
        self.grace = grace
        self.posts = 0  # requests that reached the proxy
        self.answers: list[tuple[int, dict]] = []  # what the AS answered, in order
        self.arrived = asyncio.Event()  # a "hang" or "hold" request is here
        self.release = asyncio.Event()
        self._seen: dict[str, tuple[int, str, bytes]] = {}
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._client: httpx2.AsyncClient | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/token"

    async def __aenter__(self) -> Self:
        self._client = httpx2.AsyncClient(trust_env=False)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info) -> None:
        assert self._server is not None and self._client is not None
        self._server.close()
        self._closing.set()
        self.release.set()
        for writer in list(self._writers):
            writer.transport.abort()  # idle keep-alive connections: their reads end
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())
        self._writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path, _ = head[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                fault = self.plan.pop(0) if self.plan else self.default
                self.posts += 1
                if fault == "hang":
                    self.arrived.set()
                    await self._closing.wait()
                    return
                refresh_token = parse_qs(body.decode()).get("refresh_token", [""])[0]
                if self.grace and refresh_token in self._seen:
                    status, media, content = self._seen[refresh_token]
                else:
                    answer = await self._client.request(
                        method,
                        self.upstream + path,
                        content=body,
                        headers={
                            k: v
                            for k, v in headers.items()
                            if k in ("content-type", "authorization", "accept")
                        },
                    )
                    status, media, content = (
                        answer.status_code,
                        answer.headers.get("content-type", ""),
                        answer.content,
                    )
                    self.answers.append((status, json.loads(content) if content else {}))
                    if self.grace and refresh_token and status == 200:
                        self._seen[refresh_token] = (status, media, content)
                if fault == "drop":
                    writer.transport.abort()
                    return
                if fault == "hold":
                    self.arrived.set()
                    await self.release.wait()
                    if self._closing.is_set():
                        return
                writer.write(
                    f"HTTP/1.1 {status} Proxied\r\ncontent-type: {media}\r\ncontent-length: {len(content)}\r\n"
                    "cache-control: no-store\r\n\r\n".encode()
                    + content
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(asyncio.current_task())
            self._writers.discard(writer)
            writer.close()


def _refresh_via(service: Switchboard, key: CredentialKey, token_endpoint: str, *, expire: bool) -> None:
    """Point the stored credential's refreshes at `token_endpoint`; `expire`: make the access token
    look expired to the client too (the proactive-refresh path)."""
    storage = service.context.oauth_storage
    tokens = storage.load_tokens(key)
    changes = {"token_endpoint": token_endpoint}
    if expire:
        changes |= {"expires_at": time.time() - 5, "issued_at": time.time() - 3600}
    storage.save_tokens(key, replace(tokens, **changes), expected_version=tokens.version)


async def _calls(service: Switchboard, n: int, agent: str | None = None) -> list:
    """`n` concurrent whoami calls; each result is the subject or the exception it raised."""

    async def one():
        return (await service.call_tool("oauth", "whoami", {}, agent=agent)).result["structuredContent"][
            "subject"
        ]

    async with asyncio.timeout(BOUND):
        return await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)


# --- C-05: the AS rotates, then the connection drops before we read the answer ---------------------------


@pytest.mark.parametrize("path", ["401 from the server", "expiry known to the client"])
async def test_c05_rotation_then_drop_ends_in_needs_reauth_after_at_most_two_posts(
    sample_server_factory, store_path, path
) -> None:
    server = await _connected(sample_server_factory, store_path)
    setup = _open(store_path)
    key = await _key(setup, "oauth")
    async with TokenProxy(server.origin) as proxy:
        proxy.plan = ["drop"]
        _refresh_via(setup, key, proxy.url, expire=path == "expiry known to the client")
        server.expire_tokens()
        service = _open(store_path)
        outcomes = []
        for _ in range(3):  # three rounds of five concurrent calls: a loop would show as more POSTs
            outcomes += await _calls(service, 5)
        await service.aclose()
    counters = server.counters()
    assert 1 <= proxy.posts <= 2 and counters["refresh_requests"] == proxy.posts, (proxy.posts, counters)
    assert all(isinstance(o, SwitchboardError) for o in outcomes), outcomes
    # The AS rotated on the first POST; the client never saw the new token, so it has nothing that
    # works any more (strict rotation, no grace window): the credential ends in needs_reauth.
    assert all(isinstance(o, (AuthRequired, NeedsReauthorization)) for o in outcomes[5:]), outcomes
    assert setup.context.oauth_storage.needs_reauth(key)
    await setup.aclose()


async def test_c05_rotation_then_drop_succeeds_when_the_as_has_a_grace_window(
    sample_server_factory, store_path
) -> None:
    server = await _connected(sample_server_factory, store_path)
    setup = _open(store_path)
    key = await _key(setup, "oauth")
    before = setup.context.oauth_storage.load_tokens(key)
    async with TokenProxy(server.origin, grace=True) as proxy:
        proxy.plan = ["drop"]
        _refresh_via(setup, key, proxy.url, expire=False)
        server.expire_tokens()
        service = _open(store_path)
        outcomes = []
        for _ in range(3):
            outcomes += await _calls(service, 5)
        await service.aclose()
        assert 1 <= proxy.posts <= 2, proxy.posts
        assert outcomes[-5:] == ["user-1"] * 5, outcomes
        counters = server.counters()
        assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
        after = setup.context.oauth_storage.load_tokens(key)
        assert after.refresh_token == proxy.answers[0][1]["refresh_token"] != before.refresh_token
        assert setup.context.oauth_storage.needs_reauth(key) is None
        # The stored refresh token is the live one: the next refresh works and is no reuse.
        server.expire_tokens()
        service = _open(store_path)
        assert await _calls(service, 3) == ["user-1"] * 3
        await service.aclose()
    counters = server.counters()
    assert counters["refresh_requests"] == 2 and counters["reuse_events"] == 0
    await setup.aclose()


# --- C-06: an interactive authorization lands while a refresh is in flight --------------------------------


async def _authorize_during_a_refresh(
    server, store_path: str, key: CredentialKey, setup: Switchboard, *, same_services: bool
):
    """Three calls need a refresh; while the AS's answer (it has rotated) is held, an operator
    authorizes again (subject "operator-again"). Returns (call outcomes, the authorization's stored
    tokens, what the refresh got from the AS)."""
    async with TokenProxy(server.origin, default="hold") as proxy:
        _refresh_via(setup, key, proxy.url, expire=True)
        service = _open(store_path)
        call = asyncio.create_task(_calls(service, 3))
        async with asyncio.timeout(BOUND):
            await proxy.arrived.wait()
        dashboard = service if same_services else _open(store_path)
        server.next_subject("operator-again")
        await _authorize(dashboard, "oauth")
        authorized = setup.context.oauth_storage.load_tokens(key)
        proxy.release.set()
        outcomes = await call
        if dashboard is not service:
            await dashboard.aclose()
        await service.aclose()
    assert proxy.posts == 1 and proxy.answers[0][0] == 200
    return outcomes, authorized, proxy.answers[0][1]


@pytest.mark.parametrize("where", ["same services", "another services"])
async def test_c06_authorization_during_a_refresh_wins(sample_server_factory, store_path, where) -> None:
    server = await _connected(sample_server_factory, store_path)
    setup = _open(store_path)
    key = await _key(setup, "oauth")
    outcomes, authorized, refreshed = await _authorize_during_a_refresh(
        server, store_path, key, setup, same_services=where == "same services"
    )
    final = setup.context.oauth_storage.load_tokens(key)
    assert final.access_token == authorized.access_token and final.refresh_token == authorized.refresh_token
    assert final.version == authorized.version  # the refresh's compare-and-swap lost; nothing was written
    assert (
        final.access_token != refreshed["access_token"] and final.refresh_token != refreshed["refresh_token"]
    )
    assert setup.context.oauth_storage.needs_reauth(key) is None
    # No call used the discarded refresh result (that would be subject user-1).
    assert all(o == "operator-again" for o in outcomes if isinstance(o, str)), outcomes
    if where == "another services":
        assert outcomes == ["operator-again"] * 3, outcomes
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    await setup.aclose()


async def test_c06_calls_in_flight_survive_an_authorization_in_the_same_services(
    sample_server_factory, store_path
) -> None:
    server = await _connected(sample_server_factory, store_path)
    setup = _open(store_path)
    key = await _key(setup, "oauth")
    outcomes, _, _ = await _authorize_during_a_refresh(server, store_path, key, setup, same_services=True)
    await setup.aclose()
    assert outcomes == ["operator-again"] * 3, outcomes


# --- C-08: the token endpoint hangs -------------------------------------------------------------------------

# The refresh happens either while a fresh client connects (its first request) or, on a client that is
# already connected, when the server answers 401 to the expired token.
C08_PATHS = ["first request of a new client", "401 on a connected client"]


async def _stale_behind(
    server, service: Switchboard, setup: Switchboard, key: CredentialKey, proxy: TokenProxy, path: str
) -> None:
    if path == C08_PATHS[0]:
        _refresh_via(setup, key, proxy.url, expire=True)
    else:
        assert await _calls(service, 1) == ["user-1"]
        _refresh_via(setup, key, proxy.url, expire=False)
        server.expire_tokens()


@pytest.mark.parametrize("path", C08_PATHS)
async def test_c08_hanging_token_endpoint_calls_time_out_and_the_next_call_refreshes(
    sample_server_factory, store_path, path
) -> None:
    """The call timeout (shorter than the token request's) bounds every waiter; the locks are free
    afterwards, so the next call refreshes."""
    server = await _connected(sample_server_factory, store_path)
    setup = _open(store_path)
    key = await _key(setup, "oauth")
    async with TokenProxy(server.origin, default="hang") as proxy:
        service = _open(store_path, timeout=2.0)
        await _stale_behind(server, service, setup, key, proxy, path)
        outcomes = await _calls(service, 10)
        assert all(isinstance(o, RequestTimeout) for o in outcomes), outcomes
        assert proxy.posts >= 1 and server.counters()["refresh_requests"] == 0
        proxy.default = "forward"
        assert await _calls(service, 3) == ["user-1"] * 3  # same services, same locks: not stuck
        other = _open(store_path)
        assert await _calls(other, 1) == ["user-1"]
        await other.aclose()
        await service.aclose()
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    assert setup.context.oauth_storage.needs_reauth(key) is None
    await setup.aclose()


@pytest.mark.parametrize("path", C08_PATHS)
async def test_c08_waiters_share_the_failed_attempt(
    sample_server_factory, store_path, monkeypatch, path
) -> None:
    """Token timeout shorter than the call timeout: the refresh fails by its own timeout. The calls
    that waited for it fail with it; they do not queue up one hanging POST each (the tenth waiter
    would otherwise fail only after ten token timeouts). The next call tries again."""
    short = httpx2.Timeout(1.5, connect=1.5)  # the token timeout: the shared client's default
    monkeypatch.setattr(
        core.net.client,
        "create_http_client",
        functools.partial(core.net.client.create_http_client, timeout=short),
    )
    server = await _connected(sample_server_factory, store_path)
    setup = _open(store_path)
    key = await _key(setup, "oauth")
    async with TokenProxy(server.origin, default="hang") as proxy:
        service = _open(store_path, timeout=BOUND)
        await _stale_behind(server, service, setup, key, proxy, path)
        outcomes = await _calls(service, 10)
        assert all(isinstance(o, RequestTimeout) for o in outcomes), outcomes
        assert proxy.posts == 1, f"{proxy.posts} token requests for one stale credential"
        assert await _calls(service, 1) != ["user-1"] and proxy.posts == 2  # a new call tries again
        proxy.default = "forward"
        assert await _calls(service, 3) == ["user-1"] * 3
        await service.aclose()
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    await setup.aclose()


async def test_c08_a_call_that_gives_up_waiting_for_the_refresh_lock_leaves_it_free(
    sample_server_factory, store_path
) -> None:
    """Another worker holds the credential's refresh lock (its token endpoint hangs); our call gives
    up (its timeout) while the lock is being acquired on the worker thread. When the other worker
    lets go, the lock must end up free: the next call refreshes instead of waiting for it forever."""
    server = await _connected(sample_server_factory, store_path)
    setup = _open(store_path)
    key = await _key(setup, "oauth")
    _refresh_via(setup, key, server.issuer.rstrip("/") + "/token", expire=True)
    holding, let_go = threading.Event(), threading.Event()

    def other_worker() -> None:
        with setup.store.refresh_lock(key):
            holding.set()
            let_go.wait(BOUND)

    other = threading.Thread(target=other_worker)
    other.start()
    try:
        assert await asyncio.to_thread(holding.wait, BOUND)
        service = _open(store_path, timeout=1.0)
        outcomes = await _calls(service, 3)
        assert all(isinstance(o, RequestTimeout) for o in outcomes), outcomes
    finally:
        let_go.set()
        await asyncio.to_thread(other.join, BOUND)
    assert await _calls(service, 2) == ["user-1"] * 2
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    await service.aclose()
    await setup.aclose()


# --- C-11: key rotation during refreshes ---------------------------------------------------------------------


async def test_c11_key_rotation_while_a_refresh_is_in_flight_loses_nothing(
    sample_server_factory, store_path
) -> None:
    """The refresh read version n; the rotation re-encrypts the row before the refresh commits. The
    refresh's compare-and-swap must still succeed (re-encryption is not a new credential), or the
    rotated refresh token is lost and the next refresh is a reuse that kills the grant."""
    server = await _connected(sample_server_factory, store_path, per_agent=("ada", "bob", "cy"))
    setup = _open(store_path)
    keys = {a: await _key(setup, "oauth", a) for a in ("ada", "bob", "cy")}
    old_key = setup.store.keyring.active_id
    async with TokenProxy(server.origin) as proxy:
        proxy.plan = ["hold"]
        _refresh_via(setup, keys["ada"], proxy.url, expire=True)
        service = _open(store_path)
        call = asyncio.create_task(_calls(service, 3, "ada"))
        async with asyncio.timeout(BOUND):
            await proxy.arrived.wait()
        report = await setup.rotate_key()  # a job in the dashboard process, say
        proxy.release.set()
        assert await call == ["ada"] * 3
        assert report["retired"] == [old_key] and report["unreadable"] == 0
        stored = setup.context.oauth_storage.load_tokens(keys["ada"])
        assert stored.refresh_token == proxy.answers[0][1]["refresh_token"]
        server.expire_tokens()
        results = await asyncio.gather(*(_calls(service, 2, a) for a in keys))
        assert results == [[a, a] for a in keys]
        await service.aclose()
    counters = server.counters()
    assert counters["refresh_requests"] == 4 and counters["reuse_events"] == 0
    assert set(setup.store.keys.usage()) == {setup.store.keyring.active_id}
    await setup.aclose()


async def test_c11_repeated_key_rotations_during_a_stream_of_refreshes(
    sample_server_factory, store_path
) -> None:
    """Free-running: rotations back to back in a worker thread while calls keep forcing refreshes."""
    agents = ("ada", "bob", "cy", "dee")
    server = await _connected(sample_server_factory, store_path, per_agent=agents)
    service = _open(store_path)
    rotations, rounds = [], 0

    def rotate_until(stop) -> None:
        while not stop.is_set() or len(rotations) < 3:
            rotations.append(service.store.keys.rotate(batch_size=1))

    stop = threading.Event()
    rotator = asyncio.create_task(asyncio.to_thread(rotate_until, stop))
    try:
        while len(rotations) < 3 or rounds < 5:
            server.expire_tokens()
            results = await asyncio.gather(*(_calls(service, 2, a) for a in agents))
            assert results == [[a, a] for a in agents], results
            rounds += 1
            assert rounds < 200, "rotations never finished"
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await rotator
    counters = server.counters()
    assert counters["refresh_requests"] == rounds * len(agents) and counters["reuse_events"] == 0
    assert all(r.unreadable == 0 for r in rotations)
    server.expire_tokens()  # every stored refresh token is still the live one
    results = await asyncio.gather(*(_calls(service, 1, a) for a in agents))
    assert results == [[a] for a in agents]
    assert server.counters()["reuse_events"] == 0
    await service.aclose()


# --- C-10: DCR across OS processes ---------------------------------------------------------------------------


def _start_in_a_process(store_path: str, key_file: str, agent: str, start, registering, results) -> None:
    """Start an authorization (discover, register if needed) for `agent`. On the way to the
    registration endpoint the process waits (bounded) for the other one to get there too, so without
    a cross-process lock both always register; with it, the second never gets there."""
    os.environ["SWITCHBOARD_KEY_FILE"] = key_file
    os.environ.pop("SWITCHBOARD_KEY", None)
    try:
        from core.oauth import registration

        register = registration.register_client

        async def register_after_the_other_arrives(*args, **kwargs):
            with contextlib.suppress(threading.BrokenBarrierError):
                await asyncio.to_thread(registering.wait, 5)
            return await register(*args, **kwargs)

        registration.register_client = register_after_the_other_arrives
        service = _open(store_path)

        async def go() -> str:
            try:
                url = await service.start_authorization("oauth", agent)
                return dict(parse_qsl(urlsplit(url).query))["client_id"]
            finally:
                await service.aclose()

        start.wait(60)
        results.put(("ok", asyncio.run(go())))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_c10_two_processes_register_one_client(sample_server_factory, store_path) -> None:
    server = sample_server_factory("sdk_oauth")

    async def setup() -> None:
        service = _open(store_path)
        await service.add_connector("oauth", server.url, "oauth", "per_agent")
        for agent in ("ada", "bob"):
            await service.add_agent(agent)
        await service.aclose()

    asyncio.run(setup())
    start, registering, results = SPAWN.Barrier(2), SPAWN.Barrier(2), SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=_start_in_a_process,
            args=(store_path, os.environ["SWITCHBOARD_KEY_FILE"], agent, start, registering, results),
        )
        for agent in ("ada", "bob")
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(60)
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1]  # both use the one registration
    assert server.counters()["registrations"] == 1
