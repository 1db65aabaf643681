"""Child-process entry point: `python -m sample_servers.serve KIND --info-file PATH`.

Options arrive as JSON in the `SAMPLE_SERVER_OPTIONS` environment variable (not argv, so keys do
not show up in `ps`). The server binds its own sockets on 127.0.0.1:0, starts uvicorn on them,
and only once every server is accepting writes an info file (atomically) with its URLs and
prints `LISTENING <port>`. It exits when its parent dies, so a killed test run leaves nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from sample_servers.servers import BUILDERS, MCP_PATH, origin_of

OPTIONS_ENV = "SAMPLE_SERVER_OPTIONS"
PARENT_POLL_SECONDS = 1.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: one handler stops every server in the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_loopback() -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP,
    # and without it reused connections stall ~40 ms per response (Nagle + delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def write_info(path: Path, info: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(info))
    os.replace(partial, path)


async def serve(kind: str, options: dict[str, Any], info_file: Path) -> None:
    builder = BUILDERS[kind]
    sockets = [bind_loopback() for _ in range(builder.port_count)]
    ports = [sock.getsockname()[1] for sock in sockets]
    built = builder.build(kind, options, ports)
    servers = [_Server(_config(app)) for app in built.apps]
    _stop_on_signals(servers)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets, strict=True)
    ]
    await _wait_started(servers, tasks)
    origin = origin_of(ports[0])
    write_info(info_file, {"origin": origin, "url": origin + MCP_PATH, "ports": ports, **built.info})
    print(f"LISTENING {ports[0]}", flush=True)
    watchdog = asyncio.create_task(_exit_when_orphaned(servers))
    await asyncio.gather(*tasks)
    watchdog.cancel()


def _config(app: Any) -> uvicorn.Config:
    # No access log: /authorize query strings carry state and PKCE challenges.
    return uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
    )


def _stop_on_signals(servers: list[_Server]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_exit, servers)


def _request_exit(servers: list[_Server]) -> None:
    for server in servers:
        server.should_exit = True


async def _wait_started(servers: list[_Server], tasks: list[asyncio.Task[None]]) -> None:
    while not all(server.started for server in servers):
        for task in tasks:
            if task.done():
                task.result()  # surfaces the startup error
                raise SystemExit("a server stopped during startup")
        await asyncio.sleep(0.02)


async def _exit_when_orphaned(servers: list[_Server]) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_POLL_SECONDS)
    _request_exit(servers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(BUILDERS))
    parser.add_argument("--info-file", type=Path, required=True)
    args = parser.parse_args(argv)
    options = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    try:
        asyncio.run(serve(args.kind, options, args.info_file))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
