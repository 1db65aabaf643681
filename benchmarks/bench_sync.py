"""Sync N servers, each 50 ms away: wall time and peak RSS.

The servers are the ports of one `benchmarks.latency_farm` process (see its docstring for why one
process and not N), which replays the real sample server's answers (recorded through it from one
SDK sample server, json_response=True) 50 ms after each request. Every measurement runs in a fresh
worker process (so peak RSS is that run's own), after one warm-up sync against a spare port (imports
and lazy initialisation are not timed). Variants, alternated run by run:

* `switchboard`: `Switchboard.sync_many(names)` with its default concurrency: list tools and
  record a snapshot per server in a DuckDB store (a fresh copy of a prepared store per run).
* `switchboard_pg`: `switchboard` on a PostgreSQL store (a fresh database from a prepared template
  per run, on a throwaway server: `sample_servers/postgres.py`).
* `switchboard_resync`: the same on a store where every server was synced before and its list has
  not changed since (a periodic re-sync: the snapshot is only verified, not written again).
* `switchboard_unbounded`: `switchboard` with `concurrency=N`.
* `sequential`: `await Switchboard.sync(name)` for one server after the other.
* `mcpclient_gather`: `asyncio.gather` of McpClient connect + tools/list + close, no store: the
  transport alone, what the SDK row does.
* `sdk_gather`: `asyncio.gather` of the SDK `Client` connect + tools/list + close, one shared
  SDK http client.
* `what_if_batched_store`: not a product code path. The connectors read in one store session,
  `mcpclient_gather`, then every snapshot recorded in one store session: what `sync_many` would
  cost if it did not open a store session per connector and step (see the README's findings).

Both clients use their default era negotiation ("auto": both end up on 2026-07-28 with this
dual-era server: server/discover + tools/list per server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import LOOPBACK, RssSampler, ratio, stats, target

VARIANTS = (
    "switchboard",
    "switchboard_pg",
    "switchboard_resync",
    "switchboard_unbounded",
    "sequential",
    "mcpclient_gather",
    "sdk_gather",
    "what_if_batched_store",
)
STORE_VARIANTS = {
    "switchboard",
    "switchboard_pg",
    "switchboard_resync",
    "switchboard_unbounded",
    "sequential",
    "what_if_batched_store",
}
WARM = "warm"


def _name(i: int) -> str:
    return f"server-{i:03d}"


# --- worker (a fresh process per measurement) -----------------------------------------------------


async def _worker(variant: str, urls: list[str], warm_url: str, store: str | None) -> dict[str, Any]:
    from benchmarks.common import loopback_policy

    names = [_name(i) for i in range(len(urls))]
    result: dict[str, Any] = {"variant": variant, "servers": len(urls)}
    changed: list[int] = []  # per server: tools added/changed by the sync (0: list verified unchanged)
    if variant in STORE_VARIANTS:
        from core.services import Switchboard

        service = Switchboard.open(store, policy=loopback_policy())

        async def run(targets: list[str]) -> list[int]:
            if variant == "sequential":
                outcomes = [await service.sync(name) for name in targets]
            elif variant == "switchboard_resync":
                outcomes = [o async for o in service.sync_many(targets)]
            elif variant == "switchboard_unbounded":
                outcomes = [o async for o in service.sync_many(targets, concurrency=len(targets))]
            else:
                outcomes = [o async for o in service.sync_many(targets)]
            failed = [o.error for o in outcomes if not o.ok]
            if failed:
                raise RuntimeError(f"{len(failed)} syncs failed, e.g. {failed[0]}")
            changed.extend(o.changed or 0 for o in outcomes)
            return [o.tools or 0 for o in outcomes]

        if variant == "what_if_batched_store":
            run = _batched(service)
        try:
            await run([WARM])
            changed.clear()
            with RssSampler().running() as rss:
                started, cpu = time.perf_counter(), time.process_time()
                tools = await run(names)
                result["wall_s"] = time.perf_counter() - started
                result["cpu_s"] = time.process_time() - cpu
        finally:
            await service.aclose()
    else:
        from benchmarks.clients import SdkSide, SwitchboardSide

        side: Any = SwitchboardSide() if variant == "mcpclient_gather" else SdkSide()

        async def one(url: str) -> int:
            async with side.session(url, "auto") as client:
                return len(await side.list_tools(client))

        try:
            await one(warm_url)
            with RssSampler().running() as rss:
                started, cpu = time.perf_counter(), time.process_time()
                tools = list(await asyncio.gather(*(one(url) for url in urls)))
                result["wall_s"] = time.perf_counter() - started
                result["cpu_s"] = time.process_time() - cpu
        finally:
            await side.aclose()
    result.update(
        tools_total=sum(tools),
        synced=len(tools),
        changed_total=sum(changed) if changed else None,
        rss_start_mb=round(rss.start_bytes / 2**20, 1),
        rss_peak_mb=rss.peak_mb,
        rss_delta_mb=rss.delta_mb,
    )
    return result


def _batched(service: Any) -> Any:
    from core.mcp.auth import NoAuth
    from core.mcp.client import McpClient

    async def run(targets: list[str]) -> list[int]:
        def read() -> list[Any]:
            with service.store.session():
                return [service.store.connectors.named(name) for name in targets]

        connectors = await asyncio.to_thread(read)

        async def one(url: str) -> list[dict[str, Any]]:
            client = McpClient(url, http=service.context.http(), auth=NoAuth(), timeout=service.timeout)
            try:
                return await client.list_tools()
            finally:
                await client.close()

        listed = await asyncio.gather(*(one(c.url) for c in connectors))

        def write() -> list[int]:
            with service.store.session():
                return [
                    result.tool_count
                    for result in service.store.tools.record_syncs(
                        [(c.id, "", tools) for c, tools in zip(connectors, listed, strict=True)]
                    )
                ]

        return await asyncio.to_thread(write)

    return run


def worker_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--urls-file", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--store")
    args = parser.parse_args(argv)
    urls = json.loads(args.urls_file.read_text())
    from benchmarks.common import allow_loopback

    allow_loopback()
    result = asyncio.run(_worker(args.variant, urls[1 : args.count + 1], urls[0], args.store))
    print("RESULT " + json.dumps(result), flush=True)


# --- parent ---------------------------------------------------------------------------------------


def _prepare_store(
    directory: Path,
    urls: list[str],
    count: int,
    tools: list[dict[str, Any]] | None = None,
    location: str | None = None,
) -> Path | str:
    """A store with connectors `warm` (urls[0]) and server-000.. (urls[1..count]), auth none; with
    `tools`, every connector already has that list as its current snapshot (already synced). At
    `location` (a PostgreSQL URL) or in a fresh DuckDB file in `directory`."""
    from core.store.db import Store

    target: Path | str
    if location is None:
        target = directory / f"template-{count}{'-synced' if tools is not None else ''}.duckdb"
        for old in directory.glob(target.name + "*"):
            old.unlink()
    else:
        target = location
    store = Store.open(target)
    with store.session():
        store.connectors.create(WARM, urls[0], "none")
        for i in range(count):
            connector = store.connectors.create(_name(i), urls[i + 1], "none")
            if tools is not None:
                store.tools.record_syncs([(connector.id, "", tools)])
    store.close()
    return target


def _listed_tools(url: str) -> list[dict[str, Any]]:
    """The tool list exactly as a Switchboard sync receives it from `url`."""
    from benchmarks.clients import SwitchboardSide

    async def fetch() -> list[dict[str, Any]]:
        side = SwitchboardSide()
        try:
            async with side.session(url, "auto") as client:
                return await client.list_tools()
        finally:
            await side.aclose()

    return asyncio.run(fetch())


def _run_worker(
    variant: str, urls_file: Path, count: int, store: Path | str | None, env: dict[str, str], timeout: float
) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.bench_sync",
        variant,
        "--urls-file",
        str(urls_file),
        "--count",
        str(count),
    ]
    if store is not None:
        argv += ["--store", str(store)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise RuntimeError(
        f"sync worker {variant} N={count} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )


def sync(
    counts: tuple[int, ...] = (1, 50, 200),
    reps: int = 3,
    latency_ms: float = 50.0,
    variants: tuple[str, ...] = VARIANTS,
    sequential_max: int = 200,
    large: int = 100,
    passthrough_counts: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Run every variant `reps` times per N (rotating the order) in fresh worker processes; the
    sequential variant only once when N >= `large` (it takes N x the single-server time)."""
    from benchmarks.servers import LatencyFarm, start
    from sample_servers.postgres import start_postgres

    repo = Path(__file__).resolve().parents[1]
    results: dict[str, Any] = {"latency_ms": latency_ms, "reps": reps, "servers": {}}
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "SWITCHBOARD_KEY_FILE": str(work / "store.key"),
            "SWITCHBOARD_ALLOW_HOSTS": ",".join(LOOPBACK),
            "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p),
        }
        saved_key = os.environ.get("SWITCHBOARD_KEY_FILE")
        os.environ["SWITCHBOARD_KEY_FILE"] = env["SWITCHBOARD_KEY_FILE"]
        with contextlib.ExitStack() as running:
            server = running.enter_context(start("plain", json_response=True))
            postgres = running.enter_context(start_postgres()) if "switchboard_pg" in variants else None
            for passthrough in (False, True):
                wanted = passthrough_counts if passthrough else counts
                if not wanted:
                    continue
                try:
                    farm = LatencyFarm(server.url, max(wanted) + 1, latency_ms, passthrough=passthrough)
                except RuntimeError as exc:
                    results["passthrough" if passthrough else "servers"] = {"error": str(exc)}
                    continue
                with farm:
                    urls_file = work / "urls.json"
                    urls_file.write_text(json.dumps(farm.urls))
                    section = results["servers"] if not passthrough else results.setdefault("passthrough", {})
                    for count in wanted:
                        try:
                            section[str(count)] = _measure(
                                farm,
                                server,
                                work,
                                urls_file,
                                env,
                                count,
                                reps,
                                variants,
                                sequential_max,
                                large,
                                passthrough,
                                postgres,
                            )
                        except Exception as exc:  # keep the other counts' results
                            if not passthrough:
                                raise
                            section[str(count)] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        if saved_key is None:
            os.environ.pop("SWITCHBOARD_KEY_FILE", None)
        else:
            os.environ["SWITCHBOARD_KEY_FILE"] = saved_key
    _compare(results)
    return results


def _measure(
    farm: Any,
    server: Any,
    work: Path,
    urls_file: Path,
    env: dict[str, str],
    count: int,
    reps: int,
    variants: tuple[str, ...],
    sequential_max: int,
    large: int,
    passthrough: bool,
    postgres: Any = None,
) -> dict[str, Any]:
    template = _prepare_store(work, farm.urls, count)
    pg_template = None
    if postgres is not None and "switchboard_pg" in variants and not passthrough:
        pg_template = postgres.create_database()
        _prepare_store(work, farm.urls, count, location=postgres.url(pg_template))
    synced = (
        _prepare_store(work, farm.urls, count, _listed_tools(farm.urls[0]))
        if "switchboard_resync" in variants and not passthrough
        else None
    )
    chosen = [v for v in variants if not (v == "sequential" and count > sequential_max)]
    if passthrough:
        chosen = [v for v in chosen if v in ("switchboard_unbounded", "sdk_gather")]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in chosen}
    for rep in range(reps if not passthrough else 1):
        order = chosen[rep % len(chosen) :] + chosen[: rep % len(chosen)]
        for variant in order:
            if variant == "sequential" and count >= large and rep > 0:
                continue
            store: Path | str | None = None
            if variant == "switchboard_pg":
                store = postgres.url(postgres.create_database(template=pg_template))
            elif variant in STORE_VARIANTS:
                store = work / f"run-{variant}-{count}-{rep}.duckdb"
                shutil.copy(synced if variant == "switchboard_resync" and synced else template, store)
            farm.reset()
            run = _run_worker(variant, urls_file, count, store, env, timeout=120 + count * 2.0)
            per_port = farm.stats()["per_port"]
            run["farm_requests"] = sum(
                n for port, n in per_port.items() if port != str(farm.ports[0])
            )  # not the warm-up
            runs[variant].append(run)
            if isinstance(store, str):
                postgres.drop_database(store.rsplit("/", 1)[1])
            elif store is not None:
                for leftover in work.glob(store.name + "*"):
                    leftover.unlink()
    return _summarize(runs, count, len(server.tools))


def _summarize(runs: dict[str, list[dict[str, Any]]], count: int, tools_per_server: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant, samples in runs.items():
        if not samples:
            continue
        bad = [s for s in samples if s["synced"] != count or s["tools_total"] != count * tools_per_server]
        summary[variant] = {
            "wall_ms": stats([s["wall_s"] * 1000 for s in samples], 1),
            "cpu_ms": stats([s["cpu_s"] * 1000 for s in samples], 1),
            "rss_peak_mb": stats([s["rss_peak_mb"] for s in samples], 1),
            "rss_delta_mb": stats([s["rss_delta_mb"] for s in samples], 1),
            "http_requests": samples[0]["farm_requests"],
            "synced": samples[0]["synced"],
            "tools_total": samples[0]["tools_total"],
            "changed_tools": samples[0].get("changed_total"),
            "incomplete_runs": len(bad),
        }
    return summary


def _compare(results: dict[str, Any]) -> None:
    servers = results["servers"]
    single = servers.get("1", {})
    for count, row in servers.items():
        comparison: dict[str, Any] = {}
        for variant, data in row.items():
            base = single.get(variant, {}).get("wall_ms", {}).get("median")
            comparison[f"{variant}_vs_single"] = ratio(data["wall_ms"]["median"], base)
        for variant in (
            "switchboard",
            "switchboard_pg",
            "switchboard_resync",
            "switchboard_unbounded",
            "mcpclient_gather",
        ):
            if variant in row and "sdk_gather" in row:
                comparison[f"{variant}_vs_sdk_gather"] = ratio(
                    row[variant]["wall_ms"]["median"], row["sdk_gather"]["wall_ms"]["median"]
                )
            if variant in row and "sequential" in row:
                comparison[f"{variant}_vs_sequential"] = ratio(
                    row[variant]["wall_ms"]["median"], row["sequential"]["wall_ms"]["median"]
                )
        results.setdefault("comparison", {})[count] = comparison


def targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not result:
        return []
    counts = sorted(int(c) for c in result["servers"])
    if len(counts) < 2:
        return []
    largest = str(counts[-1])
    found = []
    for variant in ("switchboard", "switchboard_pg", "switchboard_resync", "switchboard_unbounded"):
        value = result["comparison"].get(largest, {}).get(f"{variant}_vs_single")
        if value is None:
            continue
        found.append(target(f"sync {largest} servers ({variant}) vs 1 server", value, 2.0, op="<=", unit="x"))
    return found


if __name__ == "__main__":
    worker_main()
