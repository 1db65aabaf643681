"""Transport benchmarks against the real sample server (SDK `MCPServer` under uvicorn, 127.0.0.1):

* connect_list: connect + initialize (or server/discover) + tools/list, one fresh session per run,
  on a pooled HTTP client each side shares across runs.
* throughput: tools/call `echo` on one session, 1000 sequential calls, and 16 concurrent callers.

Server modes: `sse` and `json` are the sample server answering with SSE streams or JSON bodies.
On a 2-core machine that server (one uvicorn process, ~0.6 ms of CPU per request) shares the CPUs
with the client and becomes the bottleneck, which compresses every ratio toward 1. `replay` puts
the latency farm (0 ms latency) in front of the JSON server: after the first request of each kind
it answers from its recording of the real server's bytes at a few tens of microseconds per request,
so the client's own cost decides the result, as it would against a server on another machine.

Client CPU per call is this process's CPU time (the server is another process), so it shows what
each client costs independently of how fast the 2-core machine lets the server answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Self

from benchmarks.clients import SdkSide, SwitchboardSide
from benchmarks.common import alternate, paired_ratios, ratio, stats, target
from benchmarks.servers import LatencyFarm, start

SERVER_MODES = {
    "sse": {"json_response": False},
    "json": {"json_response": True},
    "replay": {"json_response": True},
}
SIDES = ("switchboard", "sdk")


def _sides() -> dict[str, Any]:
    return {"switchboard": SwitchboardSide(), "sdk": SdkSide()}


class _Endpoint:
    """The sample server, or the replaying farm in front of it, behind one interface."""

    def __init__(self, mode: str) -> None:
        self.server = start("plain", **SERVER_MODES[mode])
        self.farm: LatencyFarm | None = None
        try:
            if mode == "replay":
                self.farm = LatencyFarm(self.server.url, 1, 0.0)
        except BaseException:
            self.server.stop()
            raise
        self.url = self.farm.urls[0] if self.farm else self.server.url
        self.tools = self.server.tools

    def reset(self) -> None:
        self.server.reset()  # the server keeps a request log; keep it short
        if self.farm:
            self.farm.reset()

    def requests_total(self) -> int:
        if self.farm:
            return int(self.farm.stats()["requests_total"])
        return int(self.server.counters()["requests_total"])

    def tool_calls(self) -> int:
        if self.farm:
            return int(self.farm.stats()["requests"].get("POST tools/call", 0))
        return int(self.server.counters()["rpc_methods"].get("tools/call", 0))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.farm:
            self.farm.stop()
        self.server.stop()


async def _requests_per_connection(side: Any, server: _Endpoint, era: str) -> int:
    server.reset()
    async with side.session(server.url, era) as client:
        await side.list_tools(client)
    return server.requests_total()


async def connect_list(
    runs: int = 20,
    modes: tuple[str, ...] = ("sse", "json", "replay"),
    eras: tuple[str, ...] = ("legacy", "auto"),
    warmup: int = 3,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in modes:
        with _Endpoint(mode) as server:
            sides = _sides()
            try:
                for era in eras:
                    latency: dict[str, list[float]] = {}
                    total: dict[str, list[float]] = {name: [] for name in SIDES}
                    cpu: dict[str, list[float]] = {name: [] for name in SIDES}

                    def variant(
                        name: str,
                        era: str = era,
                        sides: dict[str, Any] = sides,
                        total: dict[str, list[float]] = total,
                        cpu: dict[str, list[float]] = cpu,
                    ) -> Any:
                        side = sides[name]

                        async def run() -> float:
                            cpu0, started = time.process_time(), time.perf_counter()
                            async with side.session(server.url, era) as client:
                                tools = await side.list_tools(client)
                                listed, cpu1 = time.perf_counter(), time.process_time()
                            total[name].append((time.perf_counter() - started) * 1000)
                            cpu[name].append((cpu1 - cpu0) * 1000)
                            if len(tools) != len(server.tools):
                                raise AssertionError(
                                    f"{name} listed {len(tools)} tools, expected {len(server.tools)}"
                                )
                            return (listed - started) * 1000

                        return run

                    variants = {name: variant(name) for name in SIDES}
                    await alternate(warmup, variants)
                    for name in SIDES:
                        total[name].clear()
                        cpu[name].clear()
                    latency = await alternate(runs, variants)
                    requests = {
                        name: await _requests_per_connection(sides[name], server, era) for name in SIDES
                    }
                    server.reset()
                    sb, sdk = stats(latency["switchboard"]), stats(latency["sdk"])
                    results[f"{mode}/{era}"] = {
                        "unit": "ms",
                        "runs": runs,
                        "switchboard": sb,
                        "sdk": sdk,
                        "ratio": ratio(sb["median"], sdk["median"]),
                        "paired_ratio": paired_ratios(latency["switchboard"], latency["sdk"]),
                        "with_close": {name: stats(total[name]) for name in SIDES},
                        "client_cpu_ms": {name: stats(cpu[name]) for name in SIDES},
                        "http_requests": requests,
                    }
            finally:
                for side in sides.values():
                    await side.aclose()
    return results


async def throughput(
    calls: int = 1000,
    concurrency: int = 16,
    rounds: int = 3,
    modes: tuple[str, ...] = ("sse", "json", "replay"),
    era: str = "legacy",
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    per_worker = max(1, calls // concurrency)
    for mode in modes:
        with _Endpoint(mode) as server:
            sides = _sides()
            cpu: dict[str, dict[str, list[float]]] = {"sequential": {}, "concurrent": {}}
            done: dict[str, dict[str, int]] = {"sequential": {}, "concurrent": {}}
            try:

                def variant(
                    name: str,
                    kind: str,
                    sides: dict[str, Any] = sides,
                    cpu: dict[str, dict[str, list[float]]] = cpu,
                    done: dict[str, dict[str, int]] = done,
                ) -> Any:
                    side = sides[name]

                    async def run() -> float:
                        server.reset()
                        async with side.session(server.url, era) as client:
                            await side.list_tools(client)
                            for _ in range(10):  # warm the connection and the code paths
                                await side.call(client, "echo", {"message": "warm"})
                            cpu0, started = time.process_time(), time.perf_counter()
                            if kind == "sequential":
                                for i in range(calls):
                                    await side.call(client, "echo", {"message": f"m{i}"})
                                count = calls
                            else:

                                async def worker(w: int) -> None:
                                    for i in range(per_worker):
                                        await side.call(client, "echo", {"message": f"w{w}-{i}"})

                                await asyncio.gather(*(worker(w) for w in range(concurrency)))
                                count = per_worker * concurrency
                            wall = time.perf_counter() - started
                            cpu[kind].setdefault(name, []).append((time.process_time() - cpu0) * 1000 / count)
                        seen = server.tool_calls()
                        done[kind][name] = seen - 10
                        return count / wall

                    return run

                for kind in ("sequential", "concurrent"):
                    rates = await alternate(rounds, {name: variant(name, kind) for name in SIDES})
                    sb, sdk = stats(rates["switchboard"], 1), stats(rates["sdk"], 1)
                    results[f"{mode}/{kind}"] = {
                        "unit": "calls/s",
                        "rounds": rounds,
                        "calls": calls if kind == "sequential" else per_worker * concurrency,
                        "concurrency": 1 if kind == "sequential" else concurrency,
                        "switchboard": sb,
                        "sdk": sdk,
                        "ratio": ratio(sb["median"], sdk["median"]),
                        "paired_ratio": paired_ratios(rates["switchboard"], rates["sdk"]),
                        "client_cpu_ms_per_call": {name: stats(cpu[kind][name]) for name in SIDES},
                        "server_saw_calls": done[kind],
                    }
            finally:
                for side in sides.values():
                    await side.aclose()
    return results


def targets(connect: dict[str, Any] | None, calls: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = []
    for key, row in (connect or {}).items():
        found.append(
            target(f"connect+list {key}: switchboard/sdk median", row["ratio"], 0.7, op="<=", unit="x")
        )
    for key, row in (calls or {}).items():
        found.append(
            target(f"tools/call {key}: switchboard/sdk calls/s", row["ratio"], 1.3, op=">=", unit="x")
        )
    return found
