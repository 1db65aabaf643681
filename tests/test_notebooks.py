"""The notebooks, executed with nbclient in order on one store against sample servers started here,
the way a person runs them next to the dashboard; and the committed files, which carry no outputs.

The servers and the executed notebooks are shared by the module (one run of the three notebooks).
Each notebook ends with a cell tagged `summary` that prints a JSON digest of what it found; the
tests read those digests, check them against the servers and the store, and scan every output for
secrets. A thread stands in for the dashboard, reading the same store all along: a notebook that
held the store between cells would make it wait.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import pytest

from core.config import load_settings
from core.services.credentials import key_of
from core.store.db import Store
from sample_servers.launch import RunningServer, start

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ORDER = ("connect_and_inspect.ipynb", "tool_inventory.ipynb", "credential_health.ipynb")
HOLOVIEWS_PLOT = "application/vnd.holoviews_exec.v0+json"
READER_BUSY_TIMEOUT = 5.0


# --- committed files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ORDER)
def test_committed_notebook_has_no_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [], (
            f"{name}: a cell has outputs; strip them before committing:\n{cell.source[:200]}"
        )
        assert cell.execution_count is None, f"{name}: a cell has an execution count:\n{cell.source[:200]}"
        assert "execution" not in cell.metadata, f"{name}: a cell keeps execution timing metadata"
    assert "widgets" not in notebook.metadata, f"{name}: widget state is an output too"
    # The parameters come first (papermill's convention) and the digest the tests read is tagged.
    assert "parameters" in code[0].metadata.get("tags", []), (
        f"{name}: the first code cell must be tagged parameters"
    )
    assert sum("summary" in cell.metadata.get("tags", []) for cell in code) == 1, f"{name}: one summary cell"


def test_every_notebook_is_executed_here():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(ORDER)


# --- one run of the three notebooks ---------------------------------------------------------------


@dataclass
class StoreReader:
    """Reads the store every few milliseconds from another thread, like a dashboard page would."""

    path: Path
    key_file: Path
    reads: int = 0
    slowest: float = 0.0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        store = _open_store(self.path, self.key_file, busy_timeout=READER_BUSY_TIMEOUT)
        while not self._stop.wait(0.05):
            began = time.monotonic()
            try:
                store.connectors.list()
                store.credentials.health()
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self.reads += 1
            self.slowest = max(self.slowest, time.monotonic() - began)


@dataclass
class Run:
    notebooks: dict[str, Any]
    bearer: RunningServer
    oauth: RunningServer
    store_path: Path
    key_file: Path
    reader: StoreReader
    seconds: dict[str, float]

    def summary(self, name: str) -> dict[str, Any]:
        cell = next(c for c in self.notebooks[name].cells if "summary" in c.metadata.get("tags", []))
        text = "".join(
            o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"
        )
        return json.loads(text)

    def outputs(self, name: str) -> list[dict[str, Any]]:
        return [o for c in self.notebooks[name].cells if c.cell_type == "code" for o in c.outputs]

    def store(self) -> Store:
        return _open_store(self.store_path, self.key_file)


def _open_store(path: Path, key_file: Path, **options: Any) -> Store:
    settings = load_settings({"SWITCHBOARD_STORE": str(path), "SWITCHBOARD_KEY_FILE": str(key_file)})
    return Store.open(path, settings=settings, **options)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    from nbclient import NotebookClient

    home = tmp_path_factory.mktemp("notebooks")
    store_path, key_file = home / "data" / "switchboard.duckdb", home / "keys" / "store.key"
    with start("bearer") as bearer, start("sdk_oauth") as oauth:
        env = {
            **os.environ,
            "SWITCHBOARD_STORE": str(store_path),
            "SWITCHBOARD_KEY_FILE": str(key_file),
            "NOTEBOOK_BEARER_URL": bearer.url,
            "NOTEBOOK_BEARER_KEY": bearer.keys["alice"],
            "NOTEBOOK_OAUTH_URL": oauth.url,
            "NOTEBOOK_AUTO_BROWSER": "1",
            "NOTEBOOK_AUTH_TIMEOUT": "30",
            "NOTEBOOK_EXERCISE": "1",
        }
        for name in ("SWITCHBOARD_KEY", "NOTEBOOK_DRIFT_TOOL"):
            env.pop(name, None)
        # The store exists and is being read before the first notebook starts, as when the dashboard
        # already serves it.
        _open_store(store_path, key_file)
        reader = StoreReader(store_path, key_file)
        reader.start()
        executed, seconds = {}, {}
        try:
            for name in ORDER:
                notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
                began = time.monotonic()
                NotebookClient(
                    notebook,
                    timeout=120,
                    kernel_name="python3",
                    resources={"metadata": {"path": str(NOTEBOOKS)}},
                ).execute(env=env)
                seconds[name] = time.monotonic() - began
                executed[name] = notebook
        finally:
            reader.stop()
        yield Run(executed, bearer, oauth, store_path, key_file, reader, seconds)


# --- connect_and_inspect ----------------------------------------------------------------------------


@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_connect_and_inspect(run):
    summary = run.summary("connect_and_inspect.ipynb")
    tools = len(run.bearer.tools)
    assert summary["connectors"]["render"] == {
        "auth": "bearer",
        "mode": "shared",
        "status": "connected",
        "tools": tools,
    }
    # A per-agent connector counts its largest agent's list, not the sum over agents.
    assert summary["connectors"]["linear"] == {
        "auth": "oauth",
        "mode": "per_agent",
        "status": "connected",
        "tools": len(run.oauth.tools),
    }
    assert summary["tool_names"] == sorted(run.bearer.tools)
    assert {"whoami", "add", "delete_item", "list_items"} <= set(summary["tool_names"])
    assert summary["ops_bot_sees"] == tools + len(run.oauth.tools)
    assert summary["add_2_3"] == {"sum": 5}
    who = {(w["connector"], w["agent"]): w for w in summary["whoami"]}
    # The shared key: both agents are its owner. OAuth per agent: each agent its own account.
    assert who["render", "ops-bot"]["subject"] == who["render", "reporter"]["subject"] == "alice"
    assert who["render", "ops-bot"]["auth"] == "bearer"
    assert who["linear", "ops-bot"]["auth"] == who["linear", "reporter"]["auth"] == "oauth"
    assert who["linear", "ops-bot"]["subject"] != who["linear", "reporter"]["subject"]
    assert summary["credentials"] == {
        "linear/ops-bot": "connected",
        "linear/reporter": "connected",
        "render/(shared)": "connected",
    }


@pytest.mark.notebooks
def test_connect_and_inspect_shows_the_authorization_urls(run):
    links = [
        o["data"]["text/html"]
        for o in run.outputs("connect_and_inspect.ipynb")
        if "text/html" in o.get("data", {}) and "/authorize?" in o["data"]["text/html"]
    ]
    assert len(links) == 2
    assert all(f'href="{run.oauth.issuer}/authorize?' in link for link in links)
    # The first comes back to the loopback listener, the second to the dashboard's callback.
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in links[0] and "%2Fcallback" in links[0]
    assert "%2Foauth%2Fcallback" in links[1]
    counters = run.oauth.counters()
    # Exactly the two authorizations of the first notebook: the others reuse its credentials.
    assert counters["authorizations"] == 2 and counters["tokens_issued"]["authorization_code"] == 2


# --- tool_inventory ---------------------------------------------------------------------------------


@pytest.mark.notebooks
def test_tool_inventory(run):
    summary = run.summary("tool_inventory.ipynb")
    tools = len(run.bearer.tools)
    assert summary["per_server"] == {"render": tools, "linear": tools}
    assert summary["per_agent"] == {
        "auditor": {"render": tools},  # no linear account
        "ops-bot": {"linear": tools, "render": tools},
        "reporter": {"linear": tools, "render": tools},
    }
    assert summary["services_agree"] is True
    assert summary["largest_schema"] == "configure"
    assert summary["destructive"] == ["delete_item"] and summary["read_only"] == ["list_items"]
    assert summary["drift_changed_on_server"] is True and summary["resync_changed"] == 1
    assert summary["drift"] == [{"name": "echo", "change": "changed", "fields": ["description"]}]
    # The SQL diff over every list with history finds only that change (the linear lists have one snapshot).
    assert [(d["connector"], d["list_of"], d["tool"], d["change"]) for d in summary["diff"]] == [
        ("render", "(shared)", "echo", "changed")
    ]
    assert summary["diff"][0]["after"].endswith("previous messages into the arguments.")
    plots = [o for o in run.outputs("tool_inventory.ipynb") if HOLOVIEWS_PLOT in o.get("data", {})]
    assert len(plots) >= 5  # per server, per agent, schema sizes, hints, snapshot timeline


@pytest.mark.notebooks
def test_tool_inventory_drift_is_in_the_store(run):
    store = run.store()
    render = store.connectors.named("render").id
    drift = store.tools.drift(render)
    assert [(c.name, c.change, c.fields) for c in drift.changes] == [("echo", "changed", ("description",))]
    assert store.tools.definition(render, "", "echo")["description"].endswith(
        "previous messages into the arguments."
    )


# --- credential_health ------------------------------------------------------------------------------


@pytest.mark.notebooks
def test_credential_health(run):
    summary = run.summary("credential_health.ipynb")
    results = {(e["agent"], e["tool"]): e["result"] for e in summary["exercise"]}
    assert results["ops-bot", "always_fails"] == "tool error"
    assert results["ops-bot", "echo"].startswith("HttpStatusError")  # the one 503
    # Both OAuth credentials refresh after their tokens expired and the call is retried: reporter's
    # (authorized the dashboard's way) and ops-bot's (through the loopback listener, another client).
    assert results["reporter", "whoami"] == results["ops-bot", "whoami"] == "ok"
    assert results["reporter", "admin_action"].startswith("InsufficientScope")

    credentials = summary["credentials"]
    for agent in ("ops-bot", "reporter"):
        credential = credentials[f"linear / {agent}"]
        assert credential["status"] == "connected" and credential["refreshed"] and credential["had_401"]
        assert 55 <= credential["expires_in_min"] <= 61  # a fresh one-hour token
    assert credentials["linear / reporter"]["had_403"] and not credentials["linear / ops-bot"]["had_403"]
    assert credentials["render / (shared)"] == {
        "kind": "bearer",
        "status": "connected",
        "reason": None,
        "refreshed": False,
        "had_401": False,
        "had_403": False,
        "expires_in_min": None,
    }
    assert summary["missing"] == [{"agent": "auditor", "connector": "linear"}]

    failures = {(f["connector"], f["tool"], f["status"]) for f in summary["failures"]}
    assert {
        ("render", "always_fails", "tool_error"),
        ("render", "echo", "error"),
        ("linear", "admin_action", "error"),
    } <= failures
    assert summary["calls_by_status"]["tool_error"] == 1 and summary["calls_by_status"]["error"] == 2
    store = run.store()
    audit = store.audit.list(limit=1000)
    assert len(audit) == sum(summary["calls_by_status"].values())
    assert sum(r["status"] != "ok" for r in audit) == len(summary["failures"])
    plots = [o for o in run.outputs("credential_health.ipynb") if HOLOVIEWS_PLOT in o.get("data", {})]
    assert len(plots) >= 3  # expiry timeline, outcomes per connector, calls over time


# --- across the run ---------------------------------------------------------------------------------


def _secrets(run: Run) -> dict[str, str]:
    """Every secret the run could have shown: the bearer keys, the stored OAuth tokens and client
    secrets, and the store's encryption keys."""
    found = {f"bearer key of {who}": key for who, key in run.bearer.keys.items()}
    store = run.store()
    storage = store.oauth_storage()
    for connector in store.connectors.list():
        for agent in [None, *store.agents.list()]:
            if connector.credential_mode == "per_agent" and agent is None:
                continue
            key = key_of(connector, agent.id if agent else None, managing=False)
            tokens = storage.load_tokens(key) if connector.auth_type == "oauth" else None
            if tokens is not None:
                found[f"access token {connector.name}/{agent and agent.name}"] = tokens.access_token
                if tokens.refresh_token:
                    found[f"refresh token {connector.name}/{agent and agent.name}"] = tokens.refresh_token
    with store.session():
        con = duckdb.connect(str(run.store_path))
        try:
            clients = con.execute("SELECT issuer, redirect_uri FROM oauth_clients").fetchall()
        finally:
            con.close()
    for issuer, redirect_uri in clients:
        registration = storage.get_client(issuer, redirect_uri)
        if registration is not None and registration.client_secret:
            found[f"client secret for {redirect_uri}"] = registration.client_secret
    for key_id, material in json.loads(run.key_file.read_text())["keys"].items():
        found[f"store key {key_id}"] = material
    return found


@pytest.mark.notebooks
def test_no_secret_in_any_output(run):
    secrets = _secrets(run)
    assert any(name.startswith("access token linear/") for name in secrets)
    assert any(name.startswith("client secret") for name in secrets)
    for name, notebook in run.notebooks.items():
        text = nbformat.writes(notebook)
        for what, secret in secrets.items():
            assert len(secret) >= 8
            assert secret not in text, f"{name} shows the {what}"


@pytest.mark.notebooks
def test_notebooks_never_keep_the_store_from_others(run):
    assert run.reader.errors == []
    assert run.reader.reads >= 20
    assert run.reader.slowest < READER_BUSY_TIMEOUT, run.reader.slowest


# --- standalone defaults ------------------------------------------------------------------------------


@pytest.mark.notebooks
async def test_standalone_defaults_start_servers_and_register_them(tmp_path, monkeypatch):
    """What a person gets running a notebook with no parameters set: a demo store with its own key
    file, sample servers started for the notebook, the connectors registered and authorized."""
    from core.services import Switchboard

    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    import nbsupport

    monkeypatch.setattr(nbsupport, "DEMO_DIR", tmp_path / "demo")
    for name in ("SWITCHBOARD_KEY_FILE", "SWITCHBOARD_KEY"):
        monkeypatch.setenv(name, "placeholder")  # so that undo also removes what setup() sets
        monkeypatch.delenv(name)
    env = nbsupport.setup(None)
    servers = list(env.started)
    try:
        assert env.store == str(tmp_path / "demo" / "switchboard.duckdb")
        assert os.environ["SWITCHBOARD_KEY_FILE"] == str(tmp_path / "demo" / "store.key")
        assert env.started_kinds == ["bearer", "sdk_oauth"] and env.bearer_url and env.oauth_url
        assert env.bearer_key not in repr(env) and env.bearer_key not in env.describe().to_string()
        board = Switchboard.open(env.store, policy=env.policy)
        assert await nbsupport.ensure_demo_connectors(board, env) == {"bearer": "render", "oauth": "linear"}
        states = {(c.connector, c.agent): c.status for c in await board.health()}
        assert states == {
            ("render", None): "connected",
            ("linear", "ops-bot"): "connected",
            ("linear", "reporter"): "connected",
        }
        authorizations = servers[1].counters()["authorizations"]
        await nbsupport.ensure_demo_connectors(board, env)  # a second notebook on the same store
        assert servers[1].counters()["authorizations"] == authorizations == 2
        agents = nbsupport.sql(board.store, "SELECT name FROM agents ORDER BY name")
        assert list(agents.name) == ["auditor", "ops-bot", "reporter"]
        await board.aclose()
    finally:
        env.close()
    assert not any(server.running for server in servers)


@pytest.mark.notebooks
async def test_own_store_without_servers_is_only_read(tmp_path, monkeypatch):
    """Pointing the analysis notebooks at your own store (the dashboard's) with no server URLs starts
    nothing and registers nothing in it."""
    from core.services import Switchboard

    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    import nbsupport

    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    env = nbsupport.setup(str(tmp_path / "own.duckdb"))
    assert env.started == [] and env.bearer_url is None and env.oauth_url is None
    board = Switchboard.open(env.store, policy=env.policy)
    assert await nbsupport.ensure_demo_connectors(board, env) == {}
    assert await board.list_agents() == [] and await board.list_connectors() == []
    with pytest.raises(ValueError, match="NOTEBOOK_BEARER_KEY"):
        nbsupport.setup(env.store, bearer_url="http://127.0.0.1:9/mcp")


@pytest.mark.notebooks
@pytest.mark.slow
def test_analysis_notebooks_on_an_empty_own_store(tmp_path):
    """tool_inventory and credential_health on a store of your own with nothing in it yet and no
    servers given: they run to the end, show empty results, and leave the store as it was."""
    from nbclient import NotebookClient

    store_path, key_file = tmp_path / "own.duckdb", tmp_path / "own.key"
    env = {**os.environ, "SWITCHBOARD_STORE": str(store_path), "SWITCHBOARD_KEY_FILE": str(key_file)}
    for name in ("SWITCHBOARD_KEY", "NOTEBOOK_BEARER_URL", "NOTEBOOK_BEARER_KEY", "NOTEBOOK_OAUTH_URL"):
        env.pop(name, None)
    summaries = {}
    for name in ("tool_inventory.ipynb", "credential_health.ipynb"):
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute(env=env)
        cell = next(c for c in notebook.cells if "summary" in c.metadata.get("tags", []))
        summaries[name] = json.loads(
            "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        )
    inventory, health = summaries["tool_inventory.ipynb"], summaries["credential_health.ipynb"]
    assert inventory["per_server"] == {} and inventory["drift"] == [] and inventory["diff"] == []
    assert inventory["drift_changed_on_server"] is False and inventory["largest_schema"] is None
    assert health["credentials"] == {} and health["calls_by_status"] == {} and health["exercise"] == []
    store = _open_store(store_path, key_file)
    assert store.connectors.list() == [] and store.agents.list() == []
