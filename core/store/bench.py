"""Measure the store: cost of a session (open/close), bulk tool inserts, inventory pages at scale.

    python -m core.store.bench                       # 1,000,000 current tools (1000 connectors x 1000)
    python -m core.store.bench --connectors 100      # smaller

"cold" numbers open and close a DuckDB connection around every query, as a one-off operation does;
"warm" numbers run inside one `store.session()`. Prints a report; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.oauth.storage import CredentialKey
from core.store.crypto import Keyring
from core.store.db import Store
from core.store.tool_lists import prepare

_WORDS = [
    "issue",
    "project",
    "sentry",
    "linear",
    "render",
    "deploy",
    "query",
    "search",
    "create",
    "update",
    "delete",
    "list",
    "fetch",
    "user",
    "team",
    "comment",
    "document",
    "page",
    "database",
    "table",
    "schema",
    "event",
    "error",
    "trace",
    "metric",
    "alert",
    "incident",
]


def _tools(rng: random.Random, connector: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}_{connector}_{i}",
            "description": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 30))),
            "inputSchema": {
                "type": "object",
                "properties": {w: {"type": "string"} for w in rng.sample(_WORDS, 3)},
            },
            "annotations": {"readOnlyHint": rng.random() < 0.5},
        }
        for i in range(count)
    ]


def _median_ms(action: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run(directory: Path, connectors: int, tools_per_connector: int, repeat: int) -> None:
    store = Store(directory / "bench.duckdb", keyring=Keyring.generate())
    conn = store.connectors.create("c-0", "https://c0.example/mcp", "bearer")
    store.credentials.save_secret(CredentialKey(conn.id), "bench-secret")

    print("== session cost (one operation = open + query + close) ==")
    print(
        f"read  (connectors.get), one session each : {_median_ms(lambda: store.connectors.get(conn.id), 30):7.2f} ms"
    )
    print(
        f"write (save_secret),    one session each : "
        f"{_median_ms(lambda: store.credentials.save_secret(CredentialKey(conn.id), 'bench-secret'), 30):7.2f} ms"
    )
    with store.session():
        print(
            f"read  inside one session                 : {_median_ms(lambda: store.connectors.get(conn.id), 30):7.2f} ms"
        )
        print(
            f"write inside one session                 : "
            f"{_median_ms(lambda: store.credentials.save_secret(CredentialKey(conn.id), 'bench-secret'), 30):7.2f} ms"
        )

    rng = random.Random(7)
    print("\n== bulk insert: one snapshot of 100,000 tools ==")
    big = _tools(rng, 0, 100_000)
    started = time.perf_counter()
    prepare(big)
    prepared_s = time.perf_counter() - started
    started = time.perf_counter()
    store.tools.record_syncs([(conn.id, "", big)])
    print(
        f"prepare (JSON, hashes) {prepared_s:.2f} s; record_syncs total {time.perf_counter() - started:.2f} s"
    )

    print(f"\n== building {connectors} connectors x {tools_per_connector} tools ==")
    started = time.perf_counter()
    with store.session():
        ids = [conn.id]
        for c in range(1, connectors):
            ids.append(store.connectors.create(f"c-{c}", f"https://c{c}.example/mcp", "bearer").id)
            store.tools.record_syncs([(ids[c], "", _tools(rng, c, tools_per_connector))])
        agent = store.agents.create("agent-1").id
        for c in range(1, connectors, max(connectors // 10, 1)):  # ten per-agent lists
            store.tools.record_syncs([(ids[c], agent, _tools(rng, c, 50))])
    total = store.tools.page(limit=1).total
    print(
        f"{total} current tool rows (500 of them in per-agent lists) in {time.perf_counter() - started:.1f} s; "
        f"file {(directory / 'bench.duckdb').stat().st_size / 1e6:.0f} MB"
    )

    middle = ids[connectors // 2]
    page = store.tools.page
    some_tool = page(connector_id=middle).rows[0]["name"]
    queries: dict[str, Callable[[], Any]] = {
        "connector filter, page 1": lambda: page(connector_id=middle),
        "connector + search": lambda: page(connector_id=middle, search="deploy"),
        "search all (rare word combination)": lambda: page(search="incident_alert"),
        "search all (common word)": lambda: page(search="deploy"),
        "read_only filter, sort by name": lambda: page(read_only=True, sort="name"),
        "agent view (own lists + shared), page 1": lambda: page(agent_id=agent),
        "agent view + search": lambda: page(agent_id=agent, search="deploy"),
        "no filter, page 1 (sort connector)": lambda: page(),
        "no filter, page 1 (sort name desc)": lambda: page(sort="name", descending=True),
        "no filter, deep page (offset 500k)": lambda: page(offset=min(500_000, total - 50)),
        "drift of one connector": lambda: store.tools.drift(middle),
        "one tool definition": lambda: store.tools.definition(middle, "", some_tool),
    }
    print(f"\n== inventory queries over {total} current tools (median of {repeat}) ==")
    print(f"{'query':40s} {'cold':>9s} {'warm':>9s}")
    for label, query in queries.items():
        cold = _median_ms(query, repeat)
        with store.session():
            query()
            warm = _median_ms(query, repeat)
        print(f"{label:40s} {cold:7.1f}ms {warm:7.1f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connectors", type=int, default=1000)
    parser.add_argument("--tools-per-connector", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, help="where to build the store (default: a temporary directory)")
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        run(args.dir, args.connectors, args.tools_per_connector, args.repeat)
    else:
        with tempfile.TemporaryDirectory() as directory:
            run(Path(directory), args.connectors, args.tools_per_connector, args.repeat)


if __name__ == "__main__":
    main()
