"""What any Python hop adds: the gateway against a bare proxy, both in front of the same upstream.

`python -m benchmarks.gateway_floor [--calls 300] [--rounds 4]`: one session each calls `echo` on
the `plain` sample server (JSON mode) directly, through a `switchboard gateway`, and through a bare
transparent proxy (uvicorn, an ASGI app forwarding the body and the MCP headers with one keep-alive
`httpx2.AsyncClient`: no auth, policy, limits or audit) on asyncio + h11 and on uvloop + httptools.
Rounds alternate (the order flips every other round; the first is a warm-up). Prints min, p10 and
median latency per side, the added median, and the CPU the hop's process spent per call. Not part
of `python -m benchmarks`: it explains the gateway row (benchmarks/README.md, "Gateway results").
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import psutil

from benchmarks.bench_gateway import _Gateway, _renamed, _sessions
from benchmarks.common import allow_loopback
from benchmarks.servers import start

_FORWARDED = (b"content-type", b"accept", b"mcp-session-id", b"mcp-protocol-version")
_PROXIES = {
    "bare proxy, asyncio + h11": ("asyncio", "h11"),
    "bare proxy, uvloop + httptools": ("uvloop", "httptools"),
}


def _serve_proxy(upstream: str, loop: str, http: str) -> None:
    import httpx2
    import uvicorn

    client: httpx2.AsyncClient | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal client
        if scope["type"] != "http":
            return
        client = client or httpx2.AsyncClient(trust_env=False)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k in _FORWARDED]
        answer = await client.request(scope["method"], upstream, content=body, headers=headers)
        kept = [(k.encode(), v.encode()) for k, v in answer.headers.items() if k.encode() in _FORWARDED]
        length = (b"content-length", str(len(answer.content)).encode())
        await send({"type": "http.response.start", "status": answer.status_code, "headers": [*kept, length]})
        await send({"type": "http.response.body", "body": answer.content})

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY on accept
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, loop=loop, http=http, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _start_proxy(upstream: str, loop: str, http: str) -> tuple[subprocess.Popen[str], str]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.gateway_floor",
        "--proxy",
        upstream,
        "--loop",
        loop,
        "--http",
        http,
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    port = process.stdout.readline().strip()
    return process, f"http://127.0.0.1:{port}/mcp"


def _cpu_ms(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return (times.user + times.system) * 1000


async def _compare(sides: dict[str, tuple[str, Any, int | None]], calls: int, rounds: int) -> None:
    from core.mcp.auth import StaticHeader

    clients = {}
    for name, (url, token, _pid) in sides.items():
        (clients[name],) = await _sessions(url, 1, StaticHeader.bearer(token) if token else None)
    clients["gateway"].call_tool = _renamed(clients["gateway"].call_tool, "plain__")
    latencies: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for round_ in range(rounds + 1):
            for name in list(sides)[:: 1 if round_ % 2 == 0 else -1]:
                pid, before, samples = sides[name][2], _cpu_ms(sides[name][2]), []
                for _ in range(calls):
                    started = time.perf_counter()
                    result = await clients[name].call_tool("echo", {"message": "m"})
                    samples.append((time.perf_counter() - started) * 1000)
                    if result.is_error:
                        raise RuntimeError(f"{name}: {result.content}")
                if round_ > 0:  # the first round warms connections and code
                    latencies[name] += samples
                    cpu[name].append((_cpu_ms(pid) - before) / calls)
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))
    direct = statistics.median(latencies["direct"])
    print(f"{'':32s} {'min':>6s} {'p10':>6s} {'median':>7s} {'added':>7s}  hop CPU per call")
    for name, values in latencies.items():
        values.sort()
        median = statistics.median(values)
        hop = f"{statistics.median(cpu[name]):.2f} ms" if sides[name][2] else "-"
        print(
            f"{name:32s} {values[0]:6.2f} {values[len(values) // 10]:6.2f} {median:7.2f} "
            f"{median - direct:+7.2f}  {hop}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per side and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--proxy", help=argparse.SUPPRESS)  # run as the bare proxy in front of this URL
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--http", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:
        _serve_proxy(args.proxy, args.loop, args.http)
        return
    allow_loopback()
    server = start("plain", json_response=True)
    gateway, proxies = None, []
    try:
        gateway = _Gateway({"plain": server.url})
        sides: dict[str, tuple[str, Any, int | None]] = {
            "direct": (server.url, None, None),
            "gateway": (gateway.url, gateway.token, gateway.process.pid),
        }
        for name, (loop, http) in _PROXIES.items():
            process, url = _start_proxy(server.url, loop, http)
            proxies.append(process)
            sides[name] = (url, None, process.pid)
        print(f"load average {psutil.getloadavg()}")
        asyncio.run(_compare(sides, args.calls, args.rounds))
        print(f"load average {psutil.getloadavg()}")
    finally:
        for process in proxies:
            process.terminate()
        if gateway is not None:
            gateway.stop()
        server.stop()


if __name__ == "__main__":
    main()
