"""`switchboard demo`: local sample MCP servers, registered as connectors with two agents, then the
dashboard — every flow clickable without an account anywhere.

Unless a store is named, the demo uses a fresh store and key in a temporary directory, so it never
touches the operator's own connectors.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
from pathlib import Path

from core.services import Switchboard
from dashboard import runtime
from dashboard.serve import STORE_ENV, serve

ALLOW_HOSTS_ENV = "SWITCHBOARD_ALLOW_HOSTS"
KEY_FILE_ENV = "SWITCHBOARD_KEY_FILE"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
AGENTS = {"alice": "Demo agent with its own accounts", "bob": "Another demo agent"}


def run_demo(
    port: int = runtime.DEFAULT_PORT,
    address: str = "localhost",
    store: str | None = None,
    auth: str = "token",
    insecure_http: bool = False,
) -> int:
    from sample_servers.launch import start

    _allow_loopback()
    if store is None:
        store = _temporary_store()
    os.environ[STORE_ENV] = store
    oauth = start("sdk_oauth")  # its consent screen approves by itself
    bearer = start("bearer")  # two keys, for the identities alice and bob
    asyncio.run(register(store, oauth_url=oauth.url, bearer_url=bearer.url, bearer_keys=bearer.keys))
    print(f"Switchboard demo: sample servers at {oauth.url} (OAuth) and {bearer.url} (bearer).", flush=True)
    print("Ctrl-C stops everything.", flush=True)
    return serve(port=port, address=address, show=False, store=store, auth=auth, insecure_http=insecure_http)


async def register(store: str, *, oauth_url: str, bearer_url: str, bearer_keys: dict[str, str]) -> None:
    """The demo's agents and connectors: OAuth shared and per agent, bearer per agent with each key.
    On a store that has them from an earlier run, they are pointed at this run's servers."""
    service = Switchboard.open(store)
    try:
        existing_agents = {a.name for a in await service.list_agents()}
        for agent, description in AGENTS.items():
            if agent not in existing_agents:
                await service.add_agent(agent, description)
        existing = {c.name for c in await service.list_connectors()}
        for name, url, auth_type, mode in (
            ("demo-oauth", oauth_url, "oauth", "shared"),
            ("demo-oauth-per-agent", oauth_url, "oauth", "per_agent"),
            ("demo-bearer", bearer_url, "bearer", "per_agent"),
        ):
            if name in existing:
                await service.update_connector(name, url=url)
            else:
                await service.add_connector(name, url, auth_type, mode)
        for agent in AGENTS:
            await service.set_secret("demo-bearer", bearer_keys[agent], agent=agent)
        # A few calls, so the overview's activity chart and audit log have something to show.
        for agent, tool in (
            ("alice", "whoami"),
            ("bob", "whoami"),
            ("alice", "list_items"),
            ("bob", "always_fails"),
        ):
            await service.call_tool("demo-bearer", tool, {}, agent=agent)
    finally:
        await service.aclose()


def _allow_loopback() -> None:
    """Let this process reach its own sample servers on 127.0.0.1 (the network policy refuses loopback
    unless allowed)."""
    allowed = [h for h in os.environ.get(ALLOW_HOSTS_ENV, "").split(",") if h.strip()]
    os.environ[ALLOW_HOSTS_ENV] = ",".join(dict.fromkeys([*allowed, *LOOPBACK_HOSTS]))


def _temporary_store() -> str:
    directory = Path(tempfile.mkdtemp(prefix="switchboard-demo-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ.setdefault(KEY_FILE_ENV, str(directory / "store.key"))
    return str(directory / "demo.duckdb")
