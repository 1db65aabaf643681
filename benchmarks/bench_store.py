"""Store benchmarks (core/store, DuckDB), with the tool generator of the store's own micro-benchmark
(`core.store.bench`), so the numbers are comparable with `python -m core.store.bench`.

* insert: `tools.record_syncs` of one list of 100,000 tools on a fresh connector (JSON/hash preparation included).
* page: inventory pages over 1,000,000 current tools (1000 connectors x 1000, plus ten per-agent
  lists), "cold" (one store session per query: lock, open, query, close, as `Switchboard.tool_page`
  does for the dashboard) and "warm" (inside one `store.session()`).
* contention: `Store.open()` + one filtered page, measured while another process (the "dashboard")
  uses the same store file in a loop (a page query, a connector list, a short pause), compared with
  the same measurement on an idle store.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import stats, target


def _tools(rng: random.Random, connector: int, count: int) -> list[dict[str, Any]]:
    from core.store.bench import _tools as store_bench_tools  # the store engineer's generator

    return store_bench_tools(rng, connector, count)


def _timed(action: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def build_inventory(path: Path | str, connectors: int, tools_per_connector: int) -> dict[str, Any]:
    """The page benchmark's store (a DuckDB file or a PostgreSQL URL); returns what was built and
    how long it took."""
    from core.store.db import Store

    rng = random.Random(7)
    store = Store.open(path)
    started = time.perf_counter()
    with store.session():
        ids = []
        for c in range(connectors):
            ids.append(store.connectors.create(f"c-{c}", f"https://c{c}.example/mcp", "bearer").id)
            store.tools.record_syncs([(ids[c], "", _tools(rng, c, tools_per_connector))])
        agent = store.agents.create("agent-1").id
        for c in range(1, connectors, max(connectors // 10, 1)):
            store.tools.record_syncs([(ids[c], agent, _tools(rng, c, 50))])
    total = store.tools.page(limit=1).total
    return {
        "connectors": connectors,
        "tools_per_connector": tools_per_connector,
        "current_tools": total,
        "build_s": round(time.perf_counter() - started, 1),
        "file_mb": round(path.stat().st_size / 1e6, 1) if isinstance(path, Path) else None,
    }


def insert(directory: Path, rows: int = 100_000, reps: int = 3) -> dict[str, Any]:
    from core.store.db import Store
    from core.store.tool_lists import prepare

    store = Store.open(directory / "insert.duckdb")
    rng = random.Random(11)
    totals, prepares = [], []
    for rep in range(reps):
        tools = _tools(rng, rep, rows)
        started = time.perf_counter()
        prepare(tools)
        prepares.append(time.perf_counter() - started)
        connector = store.connectors.create(f"ins-{rep}", f"https://ins{rep}.example/mcp", "bearer")
        started = time.perf_counter()
        (result,) = store.tools.record_syncs([(connector.id, "", tools)])
        totals.append(time.perf_counter() - started)
        if result.tool_count != rows:
            raise AssertionError(f"recorded {result.tool_count} tools, expected {rows}")
    counted = store.tools.page(limit=1).total
    return {
        "rows": rows,
        "reps": reps,
        "unit": "s",
        "record_snapshot_s": stats(totals),
        "prepare_s": stats(prepares),
        "rows_per_s": stats([rows / t for t in totals], 0),
        "current_tools_after": counted,
    }


def page_queries(store: Any, connectors: int) -> dict[str, Callable[[], Any]]:
    middle = store.connectors.named(f"c-{connectors // 2}").id
    agent = store.agents.named("agent-1").id
    page = store.tools.page
    return {
        "connector filter": lambda: page(connector_id=middle),
        "read_only filter, sort name": lambda: page(read_only=True, sort="name"),
        "destructive=False + read_only": lambda: page(read_only=True, destructive=False),
        "search (common word)": lambda: page(search="deploy"),
        "search (rare combination)": lambda: page(search="incident_alert"),
        "connector + search": lambda: page(connector_id=middle, search="deploy"),
        "agent view + read_only": lambda: page(agent_id=agent, read_only=True),
        "no filter, page 1": lambda: page(),
    }


def pages(path: Path | str, connectors: int, repeat: int = 7) -> dict[str, Any]:
    from core.store.db import Store

    store = Store.open(path)
    results: dict[str, Any] = {}
    for label, query in page_queries(store, connectors).items():
        query()  # first touch (file cache)
        cold = _timed(query, repeat)
        with store.session():
            query()
            warm = _timed(query, repeat)
        results[label] = {"cold_ms": stats(cold, 1), "warm_ms": stats(warm, 1), "total": query().total}
    return results


def hold_main(argv: list[str] | None = None) -> None:
    """The "dashboard" process of the contention benchmark: use the store in a loop until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--pause-ms", type=float, default=20.0)
    parser.add_argument("--connectors", type=int, required=True)
    args = parser.parse_args(argv)
    from core.store.db import Store

    store = Store.open(args.store)
    ids = [c.id for c in store.connectors.list()]
    ops = 0
    rng = random.Random(3)
    while True:
        store.tools.page(connector_id=rng.choice(ids), read_only=True)
        store.connectors.list()
        ops += 2
        print(f"OPS {ops}", flush=True)
        time.sleep(args.pause_ms / 1000)


def contention(path: Path, connectors: int, samples: int = 30, pause_ms: float = 20.0) -> dict[str, Any]:
    from core.store.db import Store

    middle = f"c-{connectors // 2}"

    def open_and_query() -> None:
        store = Store.open(path)
        with store.session():  # one session: lock, open, look the name up, query, close
            store.tools.page(connector_id=store.connectors.named(middle).id, read_only=True)

    open_and_query()
    idle = _timed(open_and_query, samples)
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p),
    }
    with tempfile.TemporaryFile() as log:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_store",
                "hold",
                "--store",
                str(path),
                "--pause-ms",
                str(pause_ms),
                "--connectors",
                str(connectors),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until the holder is in its loop
                log.seek(0)
                if b"OPS" in log.read():
                    break
                if holder.poll() is not None:
                    raise RuntimeError("the store holder process exited")
                time.sleep(0.05)
            busy: list[float] = []
            errors: list[str] = []
            started = time.monotonic()
            for _ in range(samples):
                try:
                    busy.extend(_timed(open_and_query, 1))
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
            elapsed = time.monotonic() - started
        finally:
            holder.terminate()
            holder.wait(timeout=10)
        log.seek(0)
        lines = [line for line in log.read().decode(errors="replace").splitlines() if line.startswith("OPS")]
    holder_ops = int(lines[-1].split()[1]) if lines else 0
    return {
        "samples": samples,
        "unit": "ms",
        "idle_ms": stats(idle, 1),
        "while_held_ms": stats(busy, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "holder": {
            "pause_ms": pause_ms,
            "ops_total": holder_ops,
            "note": "holder loop: tools.page(connector_id, read_only) + connectors.list, then pause",
        },
        "measured_for_s": round(elapsed, 1),
    }


def store(
    rows: int = 100_000,
    connectors: int = 1000,
    tools_per_connector: int = 1000,
    repeat: int = 7,
    contention_samples: int = 30,
    cache: Path | None = None,
) -> dict[str, Any]:
    """All three store benchmarks in a temporary directory (the 1M-tool store may come from `cache`)."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        work = Path(tmp)
        saved_key = os.environ.get("SWITCHBOARD_KEY_FILE")
        key_dir = cache if cache is not None else work
        key_dir.mkdir(parents=True, exist_ok=True)
        os.environ["SWITCHBOARD_KEY_FILE"] = str(key_dir / "store.key")
        try:
            result: dict[str, Any] = {"insert": insert(work, rows)}
            name = f"inventory-{connectors}x{tools_per_connector}.duckdb"
            path = work / name
            if cache is not None and (cache / name).exists():
                shutil.copy(cache / name, path)
                result["inventory"] = {
                    "connectors": connectors,
                    "tools_per_connector": tools_per_connector,
                    "current_tools": None,
                    "build_s": None,
                    "from_cache": str(cache / name),
                }
            else:
                result["inventory"] = build_inventory(path, connectors, tools_per_connector)
                if cache is not None:
                    shutil.copy(path, cache / name)
            result["pages"] = pages(path, connectors, repeat)
            result["inventory"]["current_tools"] = result["pages"]["no filter, page 1"]["total"]
            result["contention"] = contention(path, connectors, contention_samples)
        finally:
            if saved_key is None:
                os.environ.pop("SWITCHBOARD_KEY_FILE", None)
            else:
                os.environ["SWITCHBOARD_KEY_FILE"] = saved_key
    return result


def targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not result or "pages" not in result:
        return []
    return page_targets(result["pages"], result["inventory"]["current_tools"])


def page_targets(pages: dict[str, Any], total: int, engine: str = "") -> list[dict[str, Any]]:
    """Every filtered page under 50 ms cold (#14 point 6)."""
    where = f" on {engine}" if engine else ""
    return [
        target(
            f"filtered page over {total} tools{where}: {label} (cold)",
            row["cold_ms"]["median"],
            50.0,
            op="<",
            unit="ms",
        )
        for label, row in pages.items()
        if not label.startswith("no filter")
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "hold":
        hold_main(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m benchmarks.bench_store hold --store PATH --connectors N")
