"""`switchboard gateway`: the gateway on uvicorn, on a socket it binds itself.

Binding first (with IPPROTO_TCP, so asyncio sets TCP_NODELAY on accepted connections — without it a
reused connection stalls ~40 ms per response) lets `--port 0` pick a free port and print it before
serving: `switchboard gateway listening on http://127.0.0.1:PORT` is the first line on stdout.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import replace

import uvicorn

from core.roles import Principal, Role
from core.services import Switchboard
from gateway.app import GatewayApp, GatewayConfig

DEFAULT_PORT = 5007


def bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(2048)
    return sock


def _resolved(address: str) -> str:
    return "127.0.0.1" if address == "localhost" else address


def serve(
    *,
    address: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    store: str | None = None,
    config: GatewayConfig | None = None,
) -> int:
    config = replace(config or GatewayConfig(), loopback=ipaddress.ip_address(_resolved(address)).is_loopback)
    service = Switchboard.open(
        store, principal=Principal("gateway", Role.OPERATOR), timeout=config.upstream_timeout
    )
    app = GatewayApp(service, config)
    sock = bind(address, port)
    host, bound = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"switchboard gateway listening on http://{shown}:{bound}/agents/<agent>/mcp", flush=True)
    # No access log: the gateway writes its own audit rows, and request lines are nobody's business.
    # uvloop and httptools, not asyncio and h11: the gateway's CPU is the latency it adds to every
    # call (and its upstream client runs on the same loop); see benchmarks/README.md, "Gateway".
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    server.run(sockets=[sock])
    return 0
