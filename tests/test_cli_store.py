"""`switchboard store migrate|copy`, and the whole CLI on a PostgreSQL store, as a user runs it:
separate processes, real sample servers, a real PostgreSQL server (tests/fixtures/postgres.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from core.store.schema import LATEST_VERSION
from tests.fixtures.postgres import raw_execute

SWITCHBOARD = [sys.executable, "-m", "cli"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path):
    """`cli(*args, store=..., stdin=..., check=...)`: one `switchboard` process. Every file Switchboard
    could write by default (store, key) lands under `tmp_path/home`."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "SWITCHBOARD_KEY_FILE": str(tmp_path / "store.key"),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
    }
    for name in ("SWITCHBOARD_KEY", "SWITCHBOARD_STORE"):
        env.pop(name, None)

    def run(*args: str, store: str | None = None, stdin: str | None = None, check: bool = True):
        done = subprocess.run(
            [*SWITCHBOARD, *args],
            check=False,
            input=stdin,
            capture_output=True,
            text=True,
            env={**env, **({"SWITCHBOARD_STORE": store} if store else {})},
            timeout=120,
            cwd=ROOT,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"switchboard {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    run.env = env
    run.home = home
    return run


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _one_line_error(done: subprocess.CompletedProcess[str], *, code: int, says: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("switchboard: ") and says in lines[0], done.stderr


def _populate(cli, store: str, bearer_server) -> None:
    cli(
        "connector",
        "add",
        "render",
        bearer_server.url,
        "--auth",
        "bearer",
        "--mode",
        "per_agent",
        store=store,
    )
    cli("agent", "add", "ops-bot", store=store)
    cli(
        "credential",
        "set",
        "render",
        "--agent",
        "ops-bot",
        "--secret-stdin",
        store=store,
        stdin=bearer_server.keys["alice"] + "\n",
    )
    cli("agent", "token", "create", "ops-bot", "--label", "laptop", store=store)


def _whoami(cli, store: str) -> str:
    done = cli("call", "render", "whoami", "--agent", "ops-bot", "--args", "{}", "--json", store=store)
    return json.loads(done.stdout)["structuredContent"]["subject"]


# --- store copy and store migrate -------------------------------------------------------------------


def test_copy_duckdb_to_postgresql_and_back_through_the_cli(cli, tmp_path, postgres_url, bearer_server):
    laptop = str(tmp_path / "laptop.duckdb")
    _populate(cli, laptop, bearer_server)
    assert _whoami(cli, laptop) == "alice"

    copied = json.loads(cli("store", "copy", laptop, postgres_url, "--json").stdout)
    assert copied["rows"]["connectors"] == 1 and copied["rows"]["agent_tokens"] == 1
    assert copied["rows"]["audit_log"] == 1 and copied["total"] == sum(copied["rows"].values())
    assert "@" not in copied["target"] or ":***@" in copied["target"]  # never the password
    # The rows are in PostgreSQL, and the copied (still encrypted) key works from there.
    assert raw_execute(postgres_url, "SELECT name FROM connectors") == [("render",)]
    assert raw_execute(postgres_url, "SELECT count(*) FROM credentials WHERE secret IS NOT NULL") == [(1,)]
    assert _whoami(cli, postgres_url) == "alice"
    assert raw_execute(postgres_url, "SELECT count(*) FROM audit_log") == [(2,)]

    back = str(tmp_path / "back.duckdb")
    text = cli("store", "copy", postgres_url, back).stdout
    assert text.startswith(f"copied {copied['total'] + 1} rows from ") and "audit_log" in text
    listed = json.loads(cli("connector", "list", "--json", store=back).stdout)
    assert [c["name"] for c in listed] == ["render"]
    tokens = json.loads(cli("agent", "token", "list", "ops-bot", "--json", store=back).stdout)
    assert [t["label"] for t in tokens] == ["laptop"]
    assert _whoami(cli, back) == "alice"
    assert not list(cli.home.rglob("*.duckdb"))  # no command fell back to the default store


def test_copy_refuses_a_target_that_is_not_empty_unless_forced(cli, tmp_path, postgres_url, bearer_server):
    laptop = str(tmp_path / "laptop.duckdb")
    _populate(cli, laptop, bearer_server)
    cli("agent", "add", "already-there", store=postgres_url)
    refused = cli("store", "copy", laptop, postgres_url, check=False)
    _one_line_error(refused, code=2, says="is not empty (agents)")
    assert "--force" in refused.stderr
    assert raw_execute(postgres_url, "SELECT name FROM agents") == [("already-there",)]  # nothing written
    cli("store", "copy", laptop, postgres_url, "--force")
    assert raw_execute(postgres_url, "SELECT name FROM agents") == [("ops-bot",)]


def test_migrate_brings_the_named_store_to_this_version(cli, tmp_path, postgres_url):
    done = json.loads(cli("store", "migrate", "--store", postgres_url, "--json").stdout)
    assert done["schema_version"] == LATEST_VERSION and ":***@" in done["store"]
    assert raw_execute(postgres_url, "SELECT max(version) FROM schema_version") == [(LATEST_VERSION,)]
    path = tmp_path / "fresh.duckdb"
    text = cli("store", "migrate", store=str(path)).stdout  # SWITCHBOARD_STORE, as every command
    assert text.strip() == f"{path} is at schema version {LATEST_VERSION}"


def test_an_unreachable_server_is_one_line_and_nothing_is_written(cli, tmp_path):
    unreachable = f"postgresql://switchboard:secret-pw@127.0.0.1:{_closed_port()}/switchboard"
    laptop = tmp_path / "laptop.duckdb"
    cli("agent", "add", "a", store=str(laptop))
    before = laptop.read_bytes()
    for args in (["store", "migrate", "--store", unreachable], ["store", "copy", str(laptop), unreachable]):
        done = cli(*args, check=False)
        _one_line_error(done, code=7, says="cannot reach PostgreSQL at 127.0.0.1:")
        assert "secret-pw" not in done.stderr
    assert laptop.read_bytes() == before


def test_bad_credentials_are_one_line_and_name_the_fix(cli, postgres_server, postgres_url):
    wrong = postgres_url.replace(f":{postgres_server.role_password}@", ":wrong-password@")
    done = cli("store", "migrate", "--store", wrong, check=False)
    _one_line_error(done, code=7, says="refused the credentials of user 'switchboard'")
    assert "wrong-password" not in done.stderr and "SWITCHBOARD_STORE" in done.stderr
    assert raw_execute(postgres_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_a_store_from_a_newer_switchboard_is_one_line_and_nothing_is_written(cli, tmp_path, postgres_url):
    cli("agent", "add", "before", store=postgres_url)
    raw_execute(postgres_url, "INSERT INTO schema_version VALUES (999, 'future', 0)")
    laptop = str(tmp_path / "laptop.duckdb")
    cli("agent", "add", "laptop-agent", store=laptop)
    for args in (
        ["store", "migrate", "--store", postgres_url],
        ["store", "copy", laptop, postgres_url, "--force"],
        ["agent", "list", "--store", postgres_url],
    ):
        _one_line_error(cli(*args, check=False), code=7, says="written by a newer Switchboard (schema 999")
    assert raw_execute(postgres_url, "SELECT name FROM agents") == [("before",)]
    assert raw_execute(postgres_url, "SELECT max(version) FROM schema_version") == [(999,)]


# --- every command on PostgreSQL ---------------------------------------------------------------------


def test_the_readme_commands_on_postgresql(cli, postgres_url, bearer_server, sdk_oauth_server):
    """README's "The CLI" and "The agent gateway" sequences with SWITCHBOARD_STORE=postgresql://…:
    every command works and its data is in PostgreSQL (no DuckDB file appears anywhere)."""
    pg = postgres_url
    cli("connector", "add", "render", bearer_server.url, "--auth", "bearer", "--mode", "per_agent", store=pg)
    cli("agent", "add", "ops-bot", store=pg)
    cli(
        "credential",
        "set",
        "render",
        "--agent",
        "ops-bot",
        "--secret-stdin",
        store=pg,
        stdin=bearer_server.keys["bob"] + "\n",
    )
    cli("connector", "add", "linear", sdk_oauth_server.url, "--auth", "oauth", store=pg)
    connect = subprocess.Popen(
        [*SWITCHBOARD, "connect", "linear", "--no-browser", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**cli.env, "SWITCHBOARD_STORE": pg},
        cwd=ROOT,
    )
    try:
        line = connect.stdout.readline()
        assert line.startswith("Open this URL to authorize: "), line + connect.stderr.read()
        with httpx2.Client() as browser:
            callback = browser.get(line.split(": ", 1)[1].strip()).headers["location"]
            assert browser.get(callback).status_code == 200
        assert connect.wait(60) == 0, connect.stderr.read()
    finally:
        connect.kill()
    synced = cli("sync", "--all", "--json", store=pg, check=False)
    assert synced.returncode == 0, synced.stderr
    tools = json.loads(cli("tools", "--json", store=pg).stdout)
    assert {"render", "linear"} <= {t["connector"] for t in tools}
    assert _whoami(cli, pg) == "bob"
    health = json.loads(cli("health", "--json", store=pg).stdout)
    assert {h["connector"] for h in health} == {"render", "linear"}
    rotated = json.loads(cli("rotate-key", "--json", store=pg).stdout)
    assert rotated["reencrypted"] >= 3 and rotated["unreadable"] == 0
    assert _whoami(cli, pg) == "bob"  # still readable under the new key
    cli("agent", "token", "create", "ops-bot", "--label", "laptop", store=pg)
    cli("policy", "deny", "ops-bot", "--annotation", "destructiveHint", store=pg)
    reviewed = json.loads(cli("pinning", "review", "render", "--agent", "ops-bot", "--json", store=pg).stdout)
    assert reviewed and {r["state"] for r in reviewed} == {"approved"}

    # The data is in PostgreSQL.
    assert raw_execute(pg, "SELECT name FROM connectors ORDER BY name") == [("linear",), ("render",)]
    assert raw_execute(pg, "SELECT name FROM agents") == [("ops-bot",)]
    kinds = raw_execute(pg, "SELECT kind FROM credentials ORDER BY kind")
    assert kinds == [("bearer",), ("oauth",)]
    assert raw_execute(pg, "SELECT count(*) FROM current_tools WHERE connector_name = 'linear'") == [
        (len(sdk_oauth_server.tools),)
    ]
    assert raw_execute(pg, "SELECT tool, status FROM audit_log ORDER BY id") == [("whoami", "ok")] * 2
    assert raw_execute(pg, "SELECT count(*) FROM key_usage WHERE key_id = ?", [rotated["key_id"]])[0][0] == 1
    assert raw_execute(pg, "SELECT label FROM agent_tokens") == [("laptop",)]
    assert raw_execute(pg, "SELECT count(*) FROM agent_policies") == [(1,)]
    assert not list(cli.home.rglob("*.duckdb"))
