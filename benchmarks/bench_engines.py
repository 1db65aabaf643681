"""The store's two engines side by side (#14 point 6), in one run on one machine.

* `pages`: the inventory pages of `bench_store` (1000 connectors x 1000 tools plus ten per-agent
  lists) built in a DuckDB file and in a PostgreSQL database; "cold" is one store session per page
  (DuckDB: lock + open + query + close; PostgreSQL: a pooled connection), the dashboard's pattern.
* `calls_4_processes`: four worker processes on one store, each a `Switchboard` making
  `concurrency` concurrent `echo` calls to the bearer sample server until `calls` are done. Every call
  reads the store (connector, credential, tool definition, credential stamp) and appends an audit
  row, so this is the store's throughput under multi-process load: DuckDB serializes sessions with
  its file lock, PostgreSQL runs them side by side.
* `stamp_vs_notify` (PostgreSQL): how a process learns that another replaced a credential. The
  credential stamp is one indexed read inside the session every call already opens; LISTEN/NOTIFY
  would deliver the change without a read, but needs a listening connection and thread per process
  and still the stamp after a reconnect. Measured: the stamp read, and NOTIFY's delivery latency.

The PostgreSQL server is a throwaway one (`sample_servers/postgres.py`, fsync off like the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ratio, stats

ENGINES = ("duckdb", "postgresql")


def engines(
    connectors: int = 1000,
    tools_per_connector: int = 1000,
    repeat: int = 7,
    calls: int = 400,
    concurrency: int = 25,
    processes: int = 4,
) -> dict[str, Any]:
    from benchmarks import bench_store
    from sample_servers.launch import start
    from sample_servers.postgres import start_postgres

    result: dict[str, Any] = {"pages": {}, "inventory": {}, "calls_4_processes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        work = Path(tmp)
        saved_key = os.environ.get("SWITCHBOARD_KEY_FILE")
        os.environ["SWITCHBOARD_KEY_FILE"] = str(work / "store.key")
        try:
            with start_postgres() as postgres, start("bearer") as bearer:
                for engine in ENGINES:
                    location = _location(engine, work, postgres, "inventory")
                    result["inventory"][engine] = bench_store.build_inventory(
                        location, connectors, tools_per_connector
                    )
                    result["pages"][engine] = bench_store.pages(location, connectors, repeat)
                for engine in ENGINES:
                    location = _location(engine, work, postgres, "calls")
                    result["calls_4_processes"][engine] = calls_in_processes(
                        location, bearer, calls, concurrency, processes
                    )
                result["stamp_vs_notify"] = stamp_vs_notify(
                    _location("postgresql", work, postgres, "stamp"), repeat * 10
                )
        finally:
            if saved_key is None:
                os.environ.pop("SWITCHBOARD_KEY_FILE", None)
            else:
                os.environ["SWITCHBOARD_KEY_FILE"] = saved_key
    duck, pg = (result["calls_4_processes"][e]["calls_per_s"] for e in ENGINES)
    result["calls_4_processes"]["postgresql_vs_duckdb"] = ratio(pg, duck)
    for label, row in result["pages"]["postgresql"].items():
        row["vs_duckdb_cold"] = ratio(
            row["cold_ms"]["median"], result["pages"]["duckdb"][label]["cold_ms"]["median"]
        )
    return result


def _location(engine: str, work: Path, postgres: Any, name: str) -> str:
    if engine == "postgresql":
        return postgres.url(postgres.create_database())
    return str(work / f"{name}.duckdb")


# --- calls from several processes ---------------------------------------------------------------


def calls_in_processes(
    location: str, bearer: Any, calls: int, concurrency: int, processes: int
) -> dict[str, Any]:
    from core.oauth.storage import CredentialKey
    from core.store.db import Store

    store = Store.open(location)
    connector = store.connectors.create("render", bearer.url, "bearer")
    store.credentials.save_secret(CredentialKey(connector.id), bearer.keys["alice"])
    store.tools.record_syncs([(connector.id, "", [{"name": "echo", "inputSchema": {"type": "object"}}])])
    store.close()
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
        "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p),
    }
    start_at = time.time() + 3.0  # every worker imports and connects first, then all start together
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_engines",
                "worker",
                location,
                str(calls),
                str(concurrency),
            ]
            + [str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if worker.returncode or not lines:
            raise RuntimeError(f"call worker failed ({worker.returncode}): {err[-1500:]}")
        reports.append(json.loads(lines[-1].removeprefix("RESULT ")))
    wall = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    done = sum(r["ok"] for r in reports)
    return {
        "processes": processes,
        "calls_per_process": calls,
        "concurrency": concurrency,
        "ok": done,
        "errors": sum(r["errors"] for r in reports),
        "first_error": next((r["first_error"] for r in reports if r["first_error"]), None),
        "wall_s": round(wall, 2),
        "calls_per_s": round(done / wall, 1) if wall else None,
        "latency_ms": stats([m for r in reports for m in r["latencies_ms"]], 1),
    }


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("location")
    parser.add_argument("calls", type=int)
    parser.add_argument("concurrency", type=int)
    parser.add_argument("start_at", type=float)
    args = parser.parse_args(argv)
    print("RESULT " + json.dumps(asyncio.run(_worker(args))), flush=True)


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.common import loopback_policy
    from core.services import Switchboard

    service = Switchboard.open(args.location, policy=loopback_policy())
    await service.call_tool("render", "echo", {"message": "warm-up"})
    await asyncio.sleep(max(args.start_at - time.time(), 0))
    latencies: list[float] = []
    errors: list[str] = []
    remaining = args.calls
    started = time.time()

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            try:
                outcome = await service.call_tool("render", "echo", {"message": "m"})
                if outcome.is_error:
                    errors.append("isError")
                else:
                    latencies.append((time.perf_counter() - began) * 1000)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

    await asyncio.gather(*(caller() for _ in range(args.concurrency)))
    ended = time.time()
    await service.aclose()
    return {
        "started": started,
        "ended": ended,
        "ok": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "latencies_ms": latencies,
    }


# --- noticing another process's change -------------------------------------------------------------


def stamp_vs_notify(location: str, samples: int) -> dict[str, Any]:
    import psycopg

    from core.oauth.storage import CredentialKey
    from core.store.db import Store

    store = Store.open(location)
    connector = store.connectors.create("render", "https://r.example/mcp", "bearer")
    key = CredentialKey(connector.id)
    store.credentials.save_secret(key, "secret")
    stamp_ms = []
    with store.session():
        store.credentials.stamp(key)
        for _ in range(samples):
            began = time.perf_counter()
            store.credentials.stamp(key)
            stamp_ms.append((time.perf_counter() - began) * 1000)
    store.close()
    notify_ms = []
    with (
        psycopg.connect(location, autocommit=True) as listener,
        psycopg.connect(location, autocommit=True) as sender,
    ):
        listener.execute("LISTEN credentials")
        for _ in range(samples):
            began = time.perf_counter()
            sender.execute("SELECT pg_notify('credentials', 'changed')")
            while not list(listener.notifies(timeout=0, stop_after=1)):
                select.select([listener.fileno()], [], [], 1.0)
            notify_ms.append((time.perf_counter() - began) * 1000)
    return {
        "stamp_read_in_session_ms": stats(stamp_ms, 3),
        "notify_delivery_ms": stats(notify_ms, 3),
        "decision": "stamp: one read in the session each call opens anyway, both engines, no "
        "listener connection or thread per process; NOTIFY would still need it after a reconnect",
    }


def targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    from benchmarks.bench_store import page_targets

    return [
        found
        for engine, pages in ((result or {}).get("pages") or {}).items()
        for found in page_targets(pages, result["inventory"][engine]["current_tools"], engine)
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
    else:
        raise SystemExit(
            "usage: python -m benchmarks.bench_engines worker LOCATION CALLS CONCURRENCY START_AT"
        )
