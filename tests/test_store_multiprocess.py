"""Many OS processes on one store, on both engines (#14 point 5), against the SDK sample AS, which
rotates refresh tokens strictly (presenting a used one is a reuse event that revokes the family):

- 4 processes x 25 concurrent calls with an expired token: exactly one refresh request, no reuse
  event, 100 of 100 calls succeed (in-process single flight, then the store's refresh lock across
  processes: flock on DuckDB, an advisory lock on PostgreSQL, and the version compare-and-swap);
- a process killed with SIGKILL while it holds the refresh lock: the lock dies with it, and another
  process refreshes well within the lock timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from test_races import SPAWN, _connected, _expire_stored, _key, _open

PROCESSES, CALLS = 4, 25


def _calls_in_a_process(store_path: str, key_file: str, barrier, results) -> None:
    os.environ["SWITCHBOARD_KEY_FILE"] = key_file
    os.environ.pop("SWITCHBOARD_KEY", None)
    try:
        service = _open(store_path)

        async def go() -> list[str]:
            try:
                outcomes = await asyncio.gather(
                    *(service.call_tool("oauth", "whoami", {}) for _ in range(CALLS))
                )
                return [o.result["structuredContent"]["subject"] for o in outcomes]
            finally:
                await service.aclose()

        barrier.wait(60)
        results.put(("ok", asyncio.run(go())))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _expired(sample_server_factory, store_path: str):
    """An authorized shared OAuth connector whose access token both sides consider expired."""
    server = asyncio.run(_connected(sample_server_factory, store_path))
    service = _open(store_path)
    key = asyncio.run(_key(service, "oauth"))
    server.expire_tokens()
    _expire_stored(service, key)
    return server, service, key


def test_four_processes_times_25_calls_refresh_once(sample_server_factory, store_path) -> None:
    server, service, key = _expired(sample_server_factory, store_path)
    before = service.context.oauth_storage.load_tokens(key)
    barrier, results = SPAWN.Barrier(PROCESSES), SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=_calls_in_a_process,
            args=(store_path, os.environ["SWITCHBOARD_KEY_FILE"], barrier, results),
        )
        for _ in range(PROCESSES)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=180) for _ in processes]
    for p in processes:
        p.join(60)
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    subjects = [s for _, batch in outcomes for s in batch]
    assert subjects == ["user-1"] * PROCESSES * CALLS
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    after = service.context.oauth_storage.load_tokens(key)
    assert after.version == before.version + 1 and after.refresh_token != before.refresh_token


def _hold_the_refresh_lock(store_path: str, key_file: str, ready) -> None:
    """Start a refresh and stop inside it, before the token request leaves: the parent kills us."""
    os.environ["SWITCHBOARD_KEY_FILE"] = key_file
    os.environ.pop("SWITCHBOARD_KEY", None)
    from core.oauth import tokens

    async def request_token(*args, **kwargs):
        ready.set()
        await asyncio.sleep(3600)

    tokens.request_token = request_token

    async def go() -> None:
        await _open(store_path).call_tool("oauth", "whoami", {})

    asyncio.run(go())


def test_a_process_killed_holding_the_refresh_lock_releases_it(sample_server_factory, store_path) -> None:
    server, _, _ = _expired(sample_server_factory, store_path)
    ready = SPAWN.Event()
    holder = SPAWN.Process(
        target=_hold_the_refresh_lock, args=(store_path, os.environ["SWITCHBOARD_KEY_FILE"], ready)
    )
    holder.start()
    try:
        assert ready.wait(120), f"the holder never reached its refresh (exit code {holder.exitcode})"
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        assert holder.exitcode == -signal.SIGKILL
    finally:
        if holder.is_alive():
            holder.kill()
    started = time.monotonic()
    survivor = _open(store_path)

    async def call() -> str:
        try:
            outcome = await survivor.call_tool("oauth", "whoami", {})
            return outcome.result["structuredContent"]["subject"]
        finally:
            await survivor.aclose()

    assert asyncio.run(call()) == "user-1"
    waited = time.monotonic() - started
    assert waited < 30, f"the refresh lock of the killed process held {waited:.1f} s"
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0
    print(f"\nrefreshed {waited:.2f} s after the lock holder was killed")
