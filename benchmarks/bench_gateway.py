"""The agent gateway against going straight to the upstream, side by side in one run.

* calls: tools/call `echo` on the `plain` sample server (JSON mode), from `sessions` concurrent
  sessions (Switchboard's `McpClient`, legacy era: one initialize each, then calls), directly and
  through a `switchboard gateway` process (bearer agent token, the store's inventory). Each session
  paces itself (a random pause of `think_ms` on average between its calls) so the machine is not
  saturated: on 2 cores a saturated closed loop would measure queueing, i.e. CPU, not the latency a
  call gains by passing through the gateway. Rounds alternate direct / gateway; every call's
  latency is kept; the row gives median (and p90) per side, the added median in ms and the ratio.
* list: tools/list of an agent that sees `connectors` x `tools_per_connector` tools (synthetic
  definitions recorded in the store and approved, as a sync does), against tools/list of the
  `paginated` sample server serving the same number of tools in one page.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import loopback_policy, ratio, stats, target
from benchmarks.servers import start

ROOT = Path(__file__).resolve().parents[1]


class _Gateway:
    """A store with one agent and its token, and a gateway process serving it."""

    def __init__(self, connectors: dict[str, str], synthetic: tuple[int, int] = (0, 0)) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
        self.env = {
            **os.environ,
            "SWITCHBOARD_STORE": str(self.dir / "store.duckdb"),
            "SWITCHBOARD_KEY_FILE": str(self.dir / "store.key"),
        }
        self.env.pop("SWITCHBOARD_KEY", None)
        self.token = asyncio.run(self._populate(connectors, *synthetic))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "gateway", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=ROOT,
        )
        line = self.process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the gateway did not start: {line!r}")
        self.url = line.split("listening on ")[1].split("/agents")[0] + "/agents/bench/mcp"

    async def _populate(self, connectors: dict[str, str], count: int, per_connector: int) -> str:
        from core.access import AgentAccess
        from core.services import Switchboard
        from core.store import Store

        board = Switchboard(Store.open(self.env["SWITCHBOARD_STORE"]), policy=loopback_policy())
        try:
            await board.add_agent("bench")
            for name, url in connectors.items():
                await board.add_connector(name, url, "none")
                await board.sync(name)
            for index in range(count):
                name = f"synthetic{index:02d}"
                connector = await board.add_connector(name, f"https://synthetic{index}.example/mcp", "none")
                store = board.store
                with store.transaction():  # as a sync commits: the list and its first approvals at once
                    (result,) = store.tools.record_syncs(
                        [(connector.id, "", _synthetic_tools(index, per_connector))]
                    )
                    store.pinning.pin_new([result.snapshot_id])
            access = AgentAccess(board.store)
            await access.set_limits("bench", requests_per_minute=10**7, max_concurrent_calls=10**5)
            return (await access.create_token("bench", label="benchmark")).token
        finally:
            await board.aclose()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _synthetic_tools(index: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"tool_{index:02d}_{n:03d}",
            "description": f"Synthetic tool {n} of connector {index}: does one thing and reports it.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "what to look for"},
                    "limit": {"type": "integer"},
                },
                "required": ["query"],
            },
            "annotations": {"readOnlyHint": n % 2 == 0},
        }
        for n in range(count)
    ]


async def _sessions(url: str, count: int, auth: Any) -> list[Any]:
    from benchmarks.clients import SwitchboardSide
    from core.mcp.client import McpClient

    http = SwitchboardSide().http
    clients = [McpClient(url, http=http, era="legacy", auth=auth) for _ in range(count)]
    await asyncio.gather(*(c.connect() for c in clients))
    return clients


async def _round(clients: list[Any], calls_each: int, think_ms: float) -> list[float]:
    latencies: list[float] = []

    async def session(client: Any, seed: int) -> None:
        rng = random.Random(seed)
        await asyncio.sleep(rng.uniform(0, think_ms / 1000))
        for i in range(calls_each):
            started = time.perf_counter()
            result = await client.call_tool("echo", {"message": f"m{seed}-{i}"})
            latencies.append((time.perf_counter() - started) * 1000)
            if result.is_error:
                raise RuntimeError(f"echo failed: {result.content}")
            await asyncio.sleep(rng.expovariate(1000 / think_ms))

    await asyncio.gather(*(session(c, n) for n, c in enumerate(clients)))
    return latencies


async def _calls(
    upstream: str, gateway: _Gateway, sessions: int, calls_each: int, rounds: int, think_ms: float
):
    from core.mcp.auth import StaticHeader

    direct = await _sessions(upstream, sessions, None)
    through = await _sessions(gateway.url, sessions, StaticHeader.bearer(gateway.token))
    for client in through:  # the gateway's names are <connector>__<tool>
        client.call_tool = _renamed(client.call_tool, "plain__")
    samples: dict[str, list[float]] = {"direct": [], "gateway": []}
    try:
        await _round(direct, 2, think_ms)  # warm both paths: connections, caches, code
        await _round(through, 2, think_ms)
        for n in range(rounds):
            order = ("direct", "gateway") if n % 2 == 0 else ("gateway", "direct")
            for side in order:
                samples[side] += await _round(direct if side == "direct" else through, calls_each, think_ms)
    finally:
        await asyncio.gather(*(c.close() for c in [*direct, *through]))
    return samples


def _renamed(call: Any, prefix: str) -> Any:
    async def renamed(name: str, arguments: Any = None, **options: Any) -> Any:
        return await call(prefix + name, arguments, **options)

    return renamed


async def _lists(upstream: str, gateway: _Gateway, runs: int, expected: int) -> dict[str, list[float]]:
    from core.mcp.auth import StaticHeader

    (direct,) = await _sessions(upstream, 1, None)
    (through,) = await _sessions(gateway.url, 1, StaticHeader.bearer(gateway.token))
    samples: dict[str, list[float]] = {"direct": [], "gateway": []}
    try:
        for n in range(runs + 2):
            for side, client in (("direct", direct), ("gateway", through))[:: 1 if n % 2 == 0 else -1]:
                started = time.perf_counter()
                tools = await client.list_tools()
                elapsed = (time.perf_counter() - started) * 1000
                if len(tools) != expected:
                    raise AssertionError(f"{side} listed {len(tools)} tools, expected {expected}")
                if n >= 2:  # two warm-up rounds
                    samples[side].append(elapsed)
    finally:
        await asyncio.gather(direct.close(), through.close())
    return samples


def gateway(
    sessions: int = 100,
    calls_each: int = 5,
    rounds: int = 3,
    think_ms: float = 1000.0,
    list_connectors: int = 20,
    tools_per_connector: int = 50,
    list_runs: int = 30,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    server = start("plain", json_response=True)
    gw = None
    try:
        gw = _Gateway({"plain": server.url})
        server.reset()
        samples = asyncio.run(_calls(server.url, gw, sessions, calls_each, rounds, think_ms))
        direct, through = stats(samples["direct"]), stats(samples["gateway"])
        results["calls"] = {
            "unit": "ms",
            "sessions": sessions,
            "calls": {side: len(v) for side, v in samples.items()},
            "think_ms": think_ms,
            "direct": {**direct, "p90": _p90(samples["direct"])},
            "gateway": {**through, "p90": _p90(samples["gateway"])},
            "added_median_ms": round(through["median"] - direct["median"], 3),
            "ratio": ratio(through["median"], direct["median"]),
            "server_saw_calls": int(server.counters()["rpc_methods"].get("tools/call", 0)),
        }
    finally:
        if gw is not None:
            gw.stop()
        server.stop()
    total = list_connectors * tools_per_connector
    server = start("paginated", tool_count=total, page_size=total)
    gw = None
    try:
        gw = _Gateway({}, (list_connectors, tools_per_connector))
        samples = asyncio.run(_lists(server.url, gw, list_runs, total))
        direct, through = stats(samples["direct"]), stats(samples["gateway"])
        results["list"] = {
            "unit": "ms",
            "tools": total,
            "connectors": list_connectors,
            "runs": list_runs,
            "direct": direct,
            "gateway": through,
            "ratio": ratio(through["median"], direct["median"]),
        }
    finally:
        if gw is not None:
            gw.stop()
        server.stop()
    return results


def _p90(values: list[float]) -> float | None:
    return round(statistics.quantiles(values, n=10)[-1], 3) if len(values) >= 10 else None


def targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not result:
        return []
    calls, listing = result["calls"], result["list"]
    return [
        target(
            f"gateway tools/call added median, {calls['sessions']} sessions",
            calls["added_median_ms"],
            1.0,
            op="<=",
            unit="ms",
        ),
        target(
            f"gateway tools/list, {listing['tools']} tools",
            listing["gateway"]["median"],
            20.0,
            op="<",
            unit="ms",
        ),
    ]
