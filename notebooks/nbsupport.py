"""Shared plumbing for the Switchboard notebooks (not a public API; the notebooks' subject is
`core.services.Switchboard`, this module only sets the stage).

- `setup(...)`: resolve the parameters. An unset store is a demo store under the temp directory
  (shared by the three notebooks, with its own key file). An unset server URL gets a sample MCP server
  started here (stopped by `NotebookEnv.close()` or when the kernel exits) — by default only with the
  demo store, so looking at your own store never registers sample servers in it.
- `sql(store, query, params)`: read-only ad-hoc SQL over the store as a DataFrame, in one short store
  session per query, so a dashboard serving the same store is never kept waiting between cells.
- `browser(auto=...)`: what `connect_cli(on_authorization_url=...)` calls with the authorization URL.
  It always shows the URL as a link; with `auto=True` it also plays the operator's browser (GET the
  URL without following the redirect, then GET the loopback callback it redirects to), so a notebook
  can run unattended against an authorization server that approves at once (the sample servers do).
- `sample_control(url, name, **payload)`: the sample servers' control plane (drift, faults, token
  expiry); `None` when the URL is not a sample server.

No function here prints or returns a secret; the bearer key is kept out of every `repr`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pandas as pd

from core.config import KEY_FILE_ENV
from core.net import NetworkPolicy
from core.net.policy import ALLOW_HOSTS_ENV
from core.oauth.rfc8707 import canonical_resource

DEMO_DIR = Path(tempfile.gettempdir()) / "switchboard-notebooks"


@dataclass
class NotebookEnv:
    """The resolved parameters of a notebook run."""

    store: str
    bearer_url: str | None = None
    bearer_key: str | None = field(default=None, repr=False)
    oauth_url: str | None = None
    started: list[Any] = field(default_factory=list, repr=False)  # sample servers started here

    @property
    def policy(self) -> NetworkPolicy:
        """Loopback sample servers allowed, plus whatever SWITCHBOARD_ALLOW_HOSTS names."""
        extra = (os.environ.get(ALLOW_HOSTS_ENV) or "").split(",")
        return NetworkPolicy.allowing("127.0.0.1", "localhost", *extra)

    @property
    def started_kinds(self) -> list[str]:
        return [server.kind for server in self.started]

    def describe(self) -> pd.DataFrame:
        """Where this run's store and servers are (no secrets)."""
        return pd.DataFrame(
            [
                {"what": "store", "value": self.store},
                {"what": "bearer server", "value": self.bearer_url or "(none)"},
                {"what": "OAuth server", "value": self.oauth_url or "(none)"},
                {
                    "what": "sample servers started by this notebook",
                    "value": ", ".join(self.started_kinds) or "none",
                },
            ]
        ).set_index("what")

    def close(self) -> None:
        for server in self.started:
            server.stop()
        self.started.clear()


def setup(
    store: str | None,
    *,
    bearer_url: str | None = None,
    bearer_key: str | None = None,
    oauth_url: str | None = None,
    need: Sequence[str] = ("bearer", "oauth"),
    start_servers: bool | None = None,
) -> NotebookEnv:
    """Resolve the parameters; start a sample server for each needed one that is unset, if
    `start_servers` (default: only when `store` is unset, i.e. on the demo store)."""
    if start_servers is None:
        start_servers = not store
    if not store:
        DEMO_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = str(DEMO_DIR / "switchboard.duckdb")
        # The demo store gets its own key, so a demo never touches the operator's key file.
        os.environ.setdefault(KEY_FILE_ENV, str(DEMO_DIR / "store.key"))
    env = NotebookEnv(
        store=store, bearer_url=bearer_url or None, bearer_key=bearer_key or None, oauth_url=oauth_url or None
    )
    try:
        if "bearer" in need and env.bearer_url is None and start_servers:
            server = _start("bearer")
            env.started.append(server)
            env.bearer_url, env.bearer_key = server.url, server.keys["alice"]
        if env.bearer_url is not None and env.bearer_key is None:
            raise ValueError(
                "NOTEBOOK_BEARER_URL is set but NOTEBOOK_BEARER_KEY is not: set both, or neither "
                "to start a sample bearer server"
            )
        if "oauth" in need and env.oauth_url is None and start_servers:
            server = _start("sdk_oauth")
            env.started.append(server)
            env.oauth_url = server.url
    except BaseException:
        env.close()
        raise
    return env


def _start(kind: str) -> Any:
    from sample_servers.launch import start  # only needed for standalone runs

    return start(kind)


# --- the store ----------------------------------------------------------------------------------


def sql(store: Any, query: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """Run one read-only query over the store and return a DataFrame (`Store.query`: the store's own
    short session, a rolled-back transaction). Never hold a session across cells: the dashboard and
    the CLI share the file."""
    return store.query(query, params)


def when(seconds: pd.Series) -> pd.Series:
    """Epoch seconds (the store's `*_at` columns) as local-naive timestamps for tables and plots."""
    return pd.to_datetime(seconds, unit="s", utc=True).dt.tz_convert(None)


def empty_note(text: str) -> Any:
    """What a chart cell shows when there is nothing to plot yet (HoloViews fails on some empty plots)."""
    from IPython.display import Markdown

    return Markdown(f"*{text}*")


def same_server(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    try:
        return canonical_resource(a) == canonical_resource(b)
    except ValueError:
        return a == b


async def ensure_agents(board: Any, names: Sequence[str]) -> None:
    existing = {agent.name for agent in await board.list_agents()}
    for name in names:
        if name not in existing:
            await board.add_agent(name, f"created by a notebook ({name})")


async def ensure_connector(
    board: Any, name: str, url: str, auth_type: str, credential_mode: str = "shared", **options: Any
) -> Any:
    """Add the connector, or point an existing one of that name at `url` (a re-run with new servers)."""
    connectors = {c.name: c for c in await board.list_connectors()}
    current = connectors.get(name)
    if current is None:
        return await board.add_connector(name, url, auth_type, credential_mode, **options)
    changes = {}
    if not same_server(current.url, url):
        changes["url"] = url
    if current.auth_type != auth_type:
        changes["auth_type"] = auth_type
    if current.credential_mode != credential_mode:
        changes["credential_mode"] = credential_mode
    return await board.update_connector(name, **changes) if changes else current


async def connector_at(board: Any, url: str | None) -> Any:
    """The first connector registered for this server URL, or None."""
    return next((c for c in await board.list_connectors() if same_server(c.url, url)), None)


async def ensure_demo_connectors(
    board: Any,
    env: NotebookEnv,
    *,
    agents: Sequence[str] = ("ops-bot", "reporter", "auditor"),
    authorize: Sequence[str] = ("ops-bot", "reporter"),
) -> dict[str, str]:
    """What connect_and_inspect.ipynb sets up, for a notebook run on its own: the bearer server as a
    shared connector with its key, the OAuth server as a per-agent connector with `authorize`'s agents
    authorized (only when it is a sample server, which approves at once). Connectors already
    registered for these URLs are reused. Without server URLs nothing is touched. Returns
    {role: connector name} for the servers given."""
    if not (env.bearer_url or env.oauth_url):
        return {}
    await ensure_agents(board, agents)
    names: dict[str, str] = {}
    if env.bearer_url:
        bearer = await connector_at(board, env.bearer_url)
        if bearer is None or not bearer.has_shared_credential:
            bearer = bearer or await ensure_connector(board, "render", env.bearer_url, "bearer")
            await board.set_secret(bearer.name, env.bearer_key)
        names["bearer"] = bearer.name
    if env.oauth_url:
        oauth = await connector_at(board, env.oauth_url)
        repointed = oauth is None  # new, or moved to this run's server: earlier tokens are for another one
        if repointed:
            oauth = await ensure_connector(board, "linear", env.oauth_url, "oauth", "per_agent")
        names["oauth"] = oauth.name
        if sample_control(env.oauth_url, "health") is not None:
            for agent in authorize:
                states = {c.connector: c.status for c in await board.credentials_for_agent(agent)}
                if repointed or states.get(oauth.name) != "connected":
                    url = await board.start_authorization(oauth.name, agent)
                    outcome = await board.complete_authorization(
                        await authorize_in_browser(url, deliver=False)
                    )
                    if not outcome.ok:
                        raise RuntimeError(outcome.message)
    return names


async def wait_for_credential(
    board: Any, connector: str, agent: str | None, *, timeout: float, interval: float = 1.0
) -> str:
    """Poll until the credential is (re)connected — e.g. by the dashboard completing an authorization
    on the same store. Each poll is one short store read."""

    async def fingerprint() -> str | None:
        found = [c for c in await board.health() if c.connector == connector and c.agent == agent]
        return found[0].fingerprint if found and found[0].status == "connected" else None

    before = await fingerprint()
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(interval)
        now = await fingerprint()
        if now is not None and now != before:
            return f"{connector} connected for {agent or 'everyone'} (credential {now})"
    return f"no new credential for {connector} / {agent or 'shared'} within {timeout:g} s; skipped"


# --- the browser's part of an authorization ------------------------------------------------------


async def authorize_in_browser(url: str, *, deliver: bool = True) -> dict[str, str]:
    """Do what a browser does with an authorization URL when the authorization server approves at
    once: GET it without following the redirect, then (`deliver`) GET the callback it redirects to.
    Returns the callback's query parameters (code, state, iss — one-time values, not shown)."""
    async with httpx2.AsyncClient(trust_env=False, follow_redirects=False, timeout=30) as client:
        answer = await client.get(url)
        location = answer.headers.get("location")
        if answer.status_code not in (301, 302, 303, 307, 308) or not location:
            raise RuntimeError(
                f"the authorization server answered HTTP {answer.status_code} without a redirect; "
                "it wants a person: open the link instead"
            )
        params = dict(parse_qsl(urlsplit(location).query))
        if deliver:
            callback = await client.get(location)
            if callback.status_code != 200:
                raise RuntimeError(f"the callback listener answered HTTP {callback.status_code}")
        return params


@contextlib.asynccontextmanager
async def browser(*, auto: bool, label: str = "Authorize") -> AsyncIterator[Callable[[str], None]]:
    """`on_authorization_url` for `connect_cli`: shows the URL as a link, and with `auto` follows it
    in the background. Leaving the block waits for that and re-raises its failure, if any."""
    tasks: list[asyncio.Task[dict[str, str]]] = []

    def open_url(url: str) -> None:
        show_link(url, label)
        if auto:
            tasks.append(asyncio.get_running_loop().create_task(authorize_in_browser(url)))

    try:
        yield open_url
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task  # a failed helper explains an authorization that timed out


def show_link(url: str, label: str) -> None:
    from IPython.display import HTML, display

    host = urlsplit(url).netloc
    display(
        HTML(
            f'<p>{_escape(label)}: <a href="{_escape(url)}" target="_blank" rel="noopener">'
            f"open the authorization page at {_escape(host)}</a></p>"
        )
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --- the sample servers' control plane ------------------------------------------------------------


def sample_control(url: str | None, name: str, **payload: Any) -> dict[str, Any] | None:
    """POST /_control/<name> on the sample server behind `url`; None if it is not a sample server."""
    if not url:
        return None
    parts = urlsplit(url)
    try:
        with httpx2.Client(trust_env=False, timeout=10) as client:
            answer = client.post(f"{parts.scheme}://{parts.netloc}/_control/{name}", json=payload)
    except httpx2.TransportError:
        return None
    if answer.status_code != 200:
        return None
    return answer.json()
