"""Client entry point for the official MCP conformance suite.

    conformance client --command "python -m core.conformance" --scenario initialize

The suite starts a scenario server, then runs the command with the server URL as the last
argument, the scenario name in `MCP_CONFORMANCE_SCENARIO` and scenario data (JSON) in
`MCP_CONFORMANCE_CONTEXT`. Scenario servers listen on localhost, so this entry point adds the
loopback names to `SWITCHBOARD_ALLOW_HOSTS` for its own process.

Authorization scenarios (`auth/...`) belong to the OAuth client: they are delegated to
`core.oauth.conformance.run_auth_scenario(url, scenario, context) -> int`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import sys
from typing import Any

from core.errors import SwitchboardError
from core.net.policy import ALLOW_HOSTS_ENV

__all__ = ["main", "run_scenario"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_NOT_IMPLEMENTED = 3


def _allow_loopback() -> None:
    current = [h.strip() for h in os.environ.get(ALLOW_HOSTS_ENV, "").split(",") if h.strip()]
    for host in LOOPBACK_HOSTS:
        if host not in current:
            current.append(host)
    os.environ[ALLOW_HOSTS_ENV] = ",".join(current)


def is_auth_scenario(scenario: str) -> bool:
    return scenario.startswith("auth/")


def elicitation_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """Accept an elicitation, filling every field that declares a default (SEP-1034)."""
    schema = params.get("requestedSchema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    content: dict[str, Any] = {}
    if isinstance(properties, dict):
        for name, spec in properties.items():
            if isinstance(spec, dict) and "default" in spec:
                content[name] = spec["default"]
    return {"action": "accept", "content": content}


async def _answer(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "elicitation/create":
        return elicitation_defaults(params)
    if method == "roots/list":
        return {"roots": []}
    return None


# Tool calls per scenario: (tool name, arguments). Anything else just connects and lists tools.
_SCENARIO_CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "tools_call": [("add_numbers", {"a": 5, "b": 3})],
    "elicitation-sep1034-client-defaults": [("test_client_elicitation_defaults", {})],
    "sse-retry": [("test_reconnection", {})],
}


async def run_scenario(url: str, scenario: str, context: dict[str, Any]) -> int:
    from core.mcp.client import McpClient

    # Only scenarios that exercise server-to-client requests get a handler (and so the
    # capabilities and the standalone GET stream that come with one).
    wants_requests = scenario.startswith(("elicitation", "sampling"))
    async with McpClient(url, on_server_request=_answer if wants_requests else None, timeout=20.0) as client:
        info = client.info
        assert info is not None
        print(f"connected: era={info.era} version={info.protocol_version}", flush=True)
        tools = await client.list_tools()
        print(f"tools: {[t.get('name') for t in tools]}", flush=True)
        calls = _SCENARIO_CALLS.get(scenario)
        if calls is None and scenario not in ("initialize",):
            # Unknown non-auth scenario (e.g. a newer suite): call every tool that needs no arguments.
            calls = [
                (t["name"], {})
                for t in tools
                if isinstance(t.get("name"), str) and not (t.get("inputSchema") or {}).get("required")
            ]
        for name, arguments in calls or []:
            result = await client.call_tool(name, arguments)
            print(f"called {name}: is_error={result.is_error}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m core.conformance <server-url>", file=sys.stderr)
        return EXIT_USAGE
    url = args[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    try:
        context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    except ValueError:
        print("MCP_CONFORMANCE_CONTEXT is not valid JSON", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=os.environ.get("SWITCHBOARD_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    _allow_loopback()

    if is_auth_scenario(scenario):
        try:
            from core.oauth.conformance import run_auth_scenario
        except ImportError as exc:
            print(
                f"scenario {scenario}: the OAuth conformance client is not available "
                f"(core.oauth.conformance.run_auth_scenario: {exc})",
                file=sys.stderr,
            )
            return EXIT_NOT_IMPLEMENTED
        outcome = run_auth_scenario(url, scenario, context)
        if inspect.isawaitable(outcome):
            outcome = asyncio.run(outcome)
        return int(outcome)

    try:
        return asyncio.run(run_scenario(url, scenario, context))
    except SwitchboardError as exc:
        print(f"scenario {scenario or '(none)'} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
