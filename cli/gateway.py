"""`switchboard gateway`: serve the agent gateway (MCP at /agents/<agent>/mcp); the gateway face loads
only when this command runs."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands


def register(commands: Commands) -> None:
    gateway = commands.add("gateway", _gateway, "serve the agent gateway (MCP at /agents/<agent>/mcp)")
    gateway.add_argument("--port", type=int, default=5007, help="0 picks a free port (printed first)")
    gateway.add_argument("--address", default="127.0.0.1")
    gateway.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between checks for other processes' changes"
    )
    gateway.add_argument("--upstream-timeout", type=float, default=60.0, help="seconds per upstream call")


def _gateway(args: argparse.Namespace) -> int:
    from gateway.app import GatewayConfig
    from gateway.serve import serve

    config = GatewayConfig(poll_interval=args.poll_interval, upstream_timeout=args.upstream_timeout)
    return serve(address=args.address, port=args.port, store=getattr(args, "store", None), config=config)
