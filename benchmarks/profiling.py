"""Profiles for the targets a run missed (pyinstrument, text reports under results/profiles/).

Each family reruns a small version of its benchmark under the profiler:

* connect_list / throughput: pyinstrument (async mode) around each client, JSON server, legacy era.
* sync: store-call accounting (every `ServiceContext.db` call, by function: count, total and mean
  time) for `sync_many` over N servers of the latency farm, plus a pyinstrument profile of one
  `tools.record_syncs` and one `connectors.get` (where a store session's time goes).
* oauth_refresh: pyinstrument around the 50 concurrent calls after expiry, each client.
* store_pages: pyinstrument around cold filtered pages (session open/close vs query).
* cli_startup: `python -X importtime` of `switchboard connector list` and `tools` (what each loads).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import loopback_policy


def _profiler() -> Any:
    from pyinstrument import Profiler

    return Profiler(async_mode="enabled", interval=0.0005)


def _save(directory: Path, name: str, text: str) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.txt"
    path.write_text(text)
    return {"file": str(path), "head": text.splitlines()[:60]}


def _render(profiler: Any) -> str:
    return profiler.output_text(unicode=False, color=False, show_all=False, timeline=False)


async def _profile_side(side: Any, server: Any, work: str, calls: int) -> str:
    profiler = _profiler()
    if work == "connect_list":
        profiler.start()
        for _ in range(calls):
            async with side.session(server.url, "legacy") as client:
                await side.list_tools(client)
        profiler.stop()
    else:
        async with side.session(server.url, "legacy") as client:
            await side.list_tools(client)
            profiler.start()
            for i in range(calls):
                await side.call(client, "echo", {"message": f"m{i}"})
            profiler.stop()
    return _render(profiler)


async def transport(directory: Path, family: str, mode: str = "json", calls: int = 300) -> dict[str, Any]:
    from benchmarks.bench_mcp import SERVER_MODES, _sides
    from benchmarks.servers import start

    out: dict[str, Any] = {}
    with start("plain", **SERVER_MODES[mode]) as server:
        sides = _sides()
        try:
            for name, side in sides.items():
                count = calls if family == "throughput" else max(10, calls // 10)
                await _profile_side(side, server, family, 5)  # warm
                out[name] = _save(
                    directory, f"{family}-{mode}-{name}", await _profile_side(side, server, family, count)
                )
        finally:
            for side in sides.values():
                await side.aclose()
    return out


async def sync(directory: Path, count: int = 50, latency_ms: float = 50.0) -> dict[str, Any]:
    from benchmarks.bench_sync import WARM, _name, _prepare_store
    from benchmarks.servers import LatencyFarm, start

    with tempfile.TemporaryDirectory(prefix="profile-sync-") as tmp:
        work = Path(tmp)
        saved = os.environ.get("SWITCHBOARD_KEY_FILE")
        os.environ["SWITCHBOARD_KEY_FILE"] = str(work / "store.key")
        try:
            with (
                start("plain", json_response=True) as server,
                LatencyFarm(server.url, count + 1, latency_ms) as farm,
            ):
                path = _prepare_store(work, farm.urls, count)
                from core.services import Switchboard

                service = Switchboard.open(str(path), policy=loopback_policy())
                calls: dict[str, list[float]] = defaultdict(list)
                original = service.context.db

                async def accounted(function: Any, *args: Any, **kwargs: Any) -> Any:
                    queued = time.perf_counter()
                    try:
                        return await original(function, *args, **kwargs)
                    finally:
                        calls[getattr(function, "__name__", repr(function))].append(
                            time.perf_counter() - queued
                        )

                service.context.db = accounted  # type: ignore[method-assign]
                transport_profile = await _gather_profile(directory, farm.urls[1 : count + 1], farm.urls[0])
                try:
                    await service.sync(WARM)
                    calls.clear()
                    started = time.perf_counter()
                    outcomes = [o async for o in service.sync_many([_name(i) for i in range(count)])]
                    wall = time.perf_counter() - started
                finally:
                    await service.aclose()
                accounting = {
                    name: {
                        "calls": len(d),
                        "total_s": round(sum(d), 2),
                        "mean_ms": round(sum(d) / len(d) * 1000, 1),
                    }
                    for name, d in calls.items()
                }
                store = service.store
                first, second = (store.connectors.named(_name(i)).id for i in (0, 1))
                single = {}
                for label, action in (
                    ("connectors.get", lambda: store.connectors.get(first)),
                    (
                        "tools.record_syncs",
                        lambda: store.tools.record_syncs(
                            [(second, "", [{"name": "t", "inputSchema": {"type": "object"}}])]
                        ),
                    ),
                ):
                    profiler = _profiler()
                    profiler.start()
                    for _ in range(5):
                        action()
                    profiler.stop()
                    single[label] = _save(directory, f"sync-store-{label}", _render(profiler))
        finally:
            if saved is None:
                os.environ.pop("SWITCHBOARD_KEY_FILE", None)
            else:
                os.environ["SWITCHBOARD_KEY_FILE"] = saved
    return {
        "servers": count,
        "wall_s": round(wall, 2),
        "ok": sum(o.ok for o in outcomes),
        "store_calls": accounting,
        "store_call_profiles": single,
        "transport_gather": transport_profile,
        "note": "total_s is time from asking for the store call to its result (queueing for the worker "
        "thread and the store lock included); calls overlap, so totals can exceed the wall time",
    }


async def _gather_profile(directory: Path, urls: list[str], warm_url: str) -> dict[str, Any]:
    """McpClient connect + tools/list + close for every URL at once (the transport part of a sync)."""
    from benchmarks.clients import SwitchboardSide

    side = SwitchboardSide()

    async def one(url: str) -> int:
        async with side.session(url, "auto") as client:
            return len(await side.list_tools(client))

    try:
        await one(warm_url)
        profiler = _profiler()
        cpu, started = time.process_time(), time.perf_counter()
        profiler.start()
        await asyncio.gather(*(one(url) for url in urls))
        profiler.stop()
        measured = {
            "servers": len(urls),
            "wall_s_profiled": round(time.perf_counter() - started, 3),
            "cpu_s_profiled": round(time.process_time() - cpu, 3),
        }
    finally:
        await side.aclose()
    return {**measured, **_save(directory, f"sync-transport-gather-{len(urls)}", _render(profiler))}


async def oauth_refresh(directory: Path, callers: int = 50) -> dict[str, Any]:
    from benchmarks.bench_oauth import _sides
    from benchmarks.servers import start

    out: dict[str, Any] = {}
    with start("sdk_oauth") as server:
        sides = _sides()
        try:
            for name, side in sides.items():
                async with side.session(server.url) as session:
                    await session.list_tools()
                    server.expire_tokens()
                    profiler = _profiler()
                    profiler.start()
                    await asyncio.gather(
                        *(session.call("echo", {"message": str(i)}) for i in range(callers)),
                        return_exceptions=True,
                    )
                    profiler.stop()
                out[name] = _save(directory, f"oauth-refresh-{name}", _render(profiler))
        finally:
            for side in sides.values():
                await side.aclose()
    return out


def store_pages(
    directory: Path,
    connectors: int = 200,
    tools_per_connector: int = 1000,
    labels: tuple[str, ...] = (
        "read_only filter, sort name",
        "search (common word)",
        "agent view + read_only",
        "connector filter",
    ),
    source: Path | None = None,
) -> dict[str, Any]:
    """Cold (a store session per query) and warm (one session) profiles of filtered pages; on a copy
    of `source` (e.g. the benchmark's cached 1M-tool store) when given, else on a new store."""
    import shutil

    from benchmarks.bench_store import build_inventory, page_queries
    from core.store.db import Store

    with tempfile.TemporaryDirectory(prefix="profile-store-") as tmp:
        work = Path(tmp)
        saved = os.environ.get("SWITCHBOARD_KEY_FILE")
        os.environ["SWITCHBOARD_KEY_FILE"] = str((source.parent if source else work) / "store.key")
        try:
            if source is not None and source.exists():
                shutil.copy(source, work / "s.duckdb")
                built: dict[str, Any] = {"from": str(source), "connectors": connectors}
            else:
                built = build_inventory(work / "s.duckdb", connectors, tools_per_connector)
            store = Store.open(work / "s.duckdb")
            queries = page_queries(store, connectors)
            out: dict[str, Any] = {"inventory": built}
            for label in labels:
                queries[label]()
                for kind in ("cold", "warm"):
                    profiler = _profiler()
                    with store.session() if kind == "warm" else contextlib.nullcontext():
                        queries[label]()
                        profiler.start()
                        for _ in range(5):
                            queries[label]()
                        profiler.stop()
                    name = "store-page-" + label.replace(" ", "_").replace(",", "").replace("+", "and")
                    out[f"{label} ({kind})"] = _save(directory, f"{name}-{kind}", _render(profiler))
        finally:
            if saved is None:
                os.environ.pop("SWITCHBOARD_KEY_FILE", None)
            else:
                os.environ["SWITCHBOARD_KEY_FILE"] = saved
    return out


def cli_imports(
    directory: Path, commands: tuple[tuple[str, ...], ...] = (("connector", "list"), ("tools",))
) -> dict[str, Any]:
    """`python -X importtime` of each CLI command over an empty store: every module it loads, the
    slowest (cumulative) first."""
    import subprocess
    import sys

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="profile-cli-") as tmp:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env.update(
            SWITCHBOARD_STORE=f"{tmp}/store.duckdb",
            SWITCHBOARD_KEY_FILE=f"{tmp}/store.key",
            PYTHONPYCACHEPREFIX=f"{tmp}/pycache",
        )
        env.pop("SWITCHBOARD_KEY", None)
        for command in commands:
            argv = [sys.executable, "-X", "importtime", "-m", "cli", *command]
            subprocess.run(argv, env=env, capture_output=True, check=True)  # compile the bytecode first
            lines = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
            rows = [line for line in lines.splitlines() if line.startswith("import time:") and "|" in line]
            rows = rows[1:] if "self [us]" in rows[0] else rows
            rows.sort(key=lambda line: int(line.split("|")[1]), reverse=True)
            header = "import time: self [us] | cumulative | imported package"
            out[" ".join(command)] = _save(directory, "cli-" + "-".join(command), "\n".join([header, *rows]))
    return out
