"""Run the benchmarks: `.venv/bin/python -m benchmarks [--quick] [--only NAMES] [--profile]`.

Prints a table and writes the full results as JSON to benchmarks/results/ (`bench-<time>.json` and
`latest.json`). See benchmarks/README.md for what each benchmark measures and how.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = (
    "connect_list",
    "throughput",
    "sync",
    "oauth_flow",
    "oauth_refresh",
    "store",
    "engines",
    "dashboard",
    "cli_startup",
    "gateway",
)


@dataclass
class Config:
    connect_runs: int = 20
    connect_warmup: int = 3
    calls: int = 1000
    concurrency: int = 16
    call_rounds: int = 3
    sync_counts: tuple[int, ...] = (1, 50, 200)
    sync_reps: int = 3
    sync_latency_ms: float = 50.0
    sync_passthrough_counts: tuple[int, ...] = (200,)
    oauth_runs: int = 10
    refresh_callers: int = 50
    refresh_runs: int = 3
    store_rows: int = 100_000
    store_connectors: int = 1000
    store_tools_per_connector: int = 1000
    store_repeat: int = 7
    store_contention_samples: int = 30
    store_cache: str | None = None
    engine_calls: int = 400
    engine_call_concurrency: int = 25
    dashboard_runs: int = 5
    dashboard_connectors: int = 10
    dashboard_tools_per_connector: int = 1000
    cli_runs: int = 15
    cli_connectors: int = 10
    cli_tools_per_connector: int = 20
    gateway_sessions: int = 100
    gateway_calls_each: int = 5
    gateway_rounds: int = 3
    gateway_list_connectors: int = 20
    gateway_tools_per_connector: int = 50
    modes: tuple[str, ...] = ("sse", "json", "replay")
    only: tuple[str, ...] = NAMES
    profile: bool = False
    profile_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


QUICK: dict[str, Any] = {
    "connect_runs": 2,
    "connect_warmup": 1,
    "calls": 20,
    "concurrency": 4,
    "call_rounds": 1,
    "sync_counts": (1, 2),
    "sync_reps": 1,
    "sync_passthrough_counts": (),
    "oauth_runs": 1,
    "refresh_callers": 5,
    "refresh_runs": 1,
    "store_rows": 500,
    "store_connectors": 4,
    "store_tools_per_connector": 50,
    "store_repeat": 2,
    "store_contention_samples": 3,
    "engine_calls": 20,
    "engine_call_concurrency": 5,
    "dashboard_runs": 1,
    "dashboard_connectors": 2,
    "dashboard_tools_per_connector": 10,
    "cli_runs": 2,
    "cli_connectors": 2,
    "cli_tools_per_connector": 5,
    "gateway_sessions": 4,
    "gateway_calls_each": 2,
    "gateway_rounds": 1,
    "gateway_list_connectors": 2,
    "gateway_tools_per_connector": 5,
}


def _run_all(config: Config) -> dict[str, Any]:
    from benchmarks import (
        bench_cli,
        bench_dashboard,
        bench_engines,
        bench_gateway,
        bench_mcp,
        bench_oauth,
        bench_store,
        bench_sync,
    )
    from benchmarks.common import allow_loopback

    allow_loopback()
    steps: dict[str, Callable[[], Any]] = {
        "connect_list": lambda: asyncio.run(
            bench_mcp.connect_list(config.connect_runs, config.modes, warmup=config.connect_warmup)
        ),
        "throughput": lambda: asyncio.run(
            bench_mcp.throughput(config.calls, config.concurrency, config.call_rounds, config.modes)
        ),
        "sync": lambda: bench_sync.sync(
            config.sync_counts,
            config.sync_reps,
            config.sync_latency_ms,
            passthrough_counts=config.sync_passthrough_counts,
        ),
        "oauth_flow": lambda: asyncio.run(bench_oauth.flow(config.oauth_runs)),
        "oauth_refresh": lambda: asyncio.run(
            bench_oauth.refresh(config.refresh_callers, config.refresh_runs)
        ),
        "store": lambda: bench_store.store(
            config.store_rows,
            config.store_connectors,
            config.store_tools_per_connector,
            config.store_repeat,
            config.store_contention_samples,
            Path(config.store_cache) if config.store_cache else None,
        ),
        "engines": lambda: bench_engines.engines(
            config.store_connectors,
            config.store_tools_per_connector,
            config.store_repeat,
            config.engine_calls,
            config.engine_call_concurrency,
        ),
        "dashboard": lambda: bench_dashboard.dashboard(
            config.dashboard_runs, config.dashboard_connectors, config.dashboard_tools_per_connector
        ),
        "cli_startup": lambda: bench_cli.cli_startup(
            config.cli_runs, config.cli_connectors, config.cli_tools_per_connector
        ),
        "gateway": lambda: bench_gateway.gateway(
            config.gateway_sessions,
            config.gateway_calls_each,
            config.gateway_rounds,
            list_connectors=config.gateway_list_connectors,
            tools_per_connector=config.gateway_tools_per_connector,
            list_runs=3 if config.gateway_sessions < 10 else 30,
        ),
    }
    results: dict[str, Any] = {}
    durations: dict[str, float] = {}
    for name in NAMES:
        if name not in config.only:
            continue
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            results[name] = steps[name]()
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        durations[name] = round(time.perf_counter() - started, 1)
        print(f"   {name} done in {durations[name]} s", file=sys.stderr, flush=True)
    return {"benchmarks": results, "durations_s": durations}


def _targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks import (
        bench_cli,
        bench_engines,
        bench_gateway,
        bench_mcp,
        bench_oauth,
        bench_store,
        bench_sync,
    )

    bench = results["benchmarks"]

    def ok(name: str) -> Any:
        value = bench.get(name)
        return None if not value or "error" in value or "blocked" in value else value

    return [
        *bench_mcp.targets(ok("connect_list"), ok("throughput")),
        *bench_sync.targets(ok("sync")),
        *bench_oauth.targets(ok("oauth_flow"), ok("oauth_refresh")),
        *bench_store.targets(ok("store")),
        *bench_engines.targets(ok("engines")),
        *bench_cli.targets(ok("cli_startup")),
        *bench_gateway.targets(ok("gateway")),
    ]


def _profiles(results: dict[str, Any], directory: Path, quick: bool, config: Config) -> dict[str, Any]:
    """Profile the families whose targets were missed."""
    from benchmarks import profiling

    missed = {t["target"] for t in results["targets"] if t["met"] is False}
    families: dict[str, Callable[[], Any]] = {}
    if any(t.startswith("connect+list") for t in missed):
        families["connect_list"] = lambda: asyncio.run(
            profiling.transport(directory, "connect_list", calls=20 if quick else 300)
        )
    if any(t.startswith("tools/call") for t in missed):
        families["throughput"] = lambda: asyncio.run(
            profiling.transport(directory, "throughput", calls=20 if quick else 300)
        )
    if any(t.startswith("sync") for t in missed):
        families["sync"] = lambda: asyncio.run(profiling.sync(directory, count=2 if quick else 50))
    if any(t.startswith("refresh") for t in missed):
        families["oauth_refresh"] = lambda: asyncio.run(
            profiling.oauth_refresh(directory, 5 if quick else 50)
        )
    if any(t.startswith("filtered page") for t in missed):
        cached = (
            Path(config.store_cache)
            / f"inventory-{config.store_connectors}x{config.store_tools_per_connector}.duckdb"
            if config.store_cache
            else None
        )
        families["store_pages"] = lambda: profiling.store_pages(
            directory,
            *((4, 50) if quick else (config.store_connectors, config.store_tools_per_connector)),
            source=cached,
        )
    if any(t.startswith("CLI start-up") for t in missed):
        families["cli_startup"] = lambda: profiling.cli_imports(directory)
    out: dict[str, Any] = {}
    for name, run in families.items():
        print(f"-- profile {name} ...", file=sys.stderr, flush=True)
        try:
            out[name] = run()
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _git() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]

    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in run("status", "--porcelain", "--", "core").splitlines()]
    return {"commit": run("rev-parse", "--short", "HEAD"), "uncommitted_core_files": dirty}


def run(config: Config, out_dir: Path = RESULTS, quick: bool = False) -> tuple[dict[str, Any], Path]:
    """Run the configured benchmarks; returns the results and the JSON file written."""
    from benchmarks.common import environment

    logging.getLogger("mcp").setLevel(logging.ERROR)  # the SDK warns on every 404 to DELETE etc.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, Any] = {
        "started": stamp,
        "quick": quick,
        "config": asdict(config),
        "git": _git(),
        "environment": environment(),
    }
    results.update(_run_all(config))
    results["targets"] = _targets(results)
    if config.profile:
        directory = Path(config.profile_dir) if config.profile_dir else out_dir / "profiles" / stamp
        results["profiles"] = _profiles(results, directory, quick, config)
    results["environment"]["load_average_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{stamp}{'-quick' if quick else ''}.json"
    text = json.dumps(results, indent=1, default=str)
    path.write_text(text)
    (out_dir / ("latest-quick.json" if quick else "latest.json")).write_text(text)
    return results, path


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny configuration (what the smoke test runs)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(NAMES)}")
    parser.add_argument("--skip", help="comma-separated benchmarks to leave out")
    parser.add_argument(
        "--profile", action="store_true", help="profile the families whose targets were missed"
    )
    parser.add_argument("--runs", type=int, help="connect+list runs per client and mode (default 20)")
    parser.add_argument("--calls", type=int, help="tools/call per round (default 1000)")
    parser.add_argument("--rounds", type=int, help="throughput rounds per client (default 3)")
    parser.add_argument("--sync-counts", type=_ints, help="servers per sync, e.g. 1,50,200")
    parser.add_argument("--sync-reps", type=int, help="runs per sync variant and N (default 3)")
    parser.add_argument(
        "--no-passthrough", action="store_true", help="skip the sync run against the real server"
    )
    parser.add_argument(
        "--store-connectors", type=int, help="connectors in the page benchmark's store (x1000 tools)"
    )
    parser.add_argument("--store-cache", help="keep and reuse the built 1M-tool store in this directory")
    parser.add_argument("--modes", help="server modes for the transport benchmarks: sse,json,replay")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where to write the JSON (default benchmarks/results)"
    )
    args = parser.parse_args(argv)

    config = Config(**QUICK) if args.quick else Config()
    if args.only:
        config.only = tuple(n.strip() for n in args.only.split(","))
    if args.skip:
        config.only = tuple(n for n in config.only if n not in {s.strip() for s in args.skip.split(",")})
    unknown = set(config.only) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
    for option, attribute in (
        ("runs", "connect_runs"),
        ("calls", "calls"),
        ("rounds", "call_rounds"),
        ("sync_counts", "sync_counts"),
        ("sync_reps", "sync_reps"),
        ("store_connectors", "store_connectors"),
        ("store_cache", "store_cache"),
    ):
        value = getattr(args, option)
        if value is not None:
            setattr(config, attribute, value)
    if args.no_passthrough:
        config.sync_passthrough_counts = ()
    if args.modes:
        config.modes = tuple(m.strip() for m in args.modes.split(","))
    config.profile = args.profile

    from benchmarks.report import table

    results, path = run(config, args.out, quick=args.quick)
    print(table(results))
    if results.get("profiles"):
        print("\nprofiles:")
        for family, data in results["profiles"].items():
            files = (
                [v["file"] for v in data.values() if isinstance(v, dict) and "file" in v]
                if isinstance(data, dict)
                else []
            )
            print(f"  {family}: {', '.join(files) or json.dumps(data)[:200]}")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
