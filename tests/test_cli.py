"""The `switchboard` CLI as a user runs it: separate processes on one store, real sample servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

SWITCHBOARD = [sys.executable, "-m", "cli"]


@pytest.fixture
def cli(tmp_path):
    env = {
        **os.environ,
        "SWITCHBOARD_STORE": str(tmp_path / "store.duckdb"),
        "SWITCHBOARD_KEY_FILE": str(tmp_path / "store.key"),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
    }
    env.pop("SWITCHBOARD_KEY", None)

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*SWITCHBOARD, *args],
            check=False,
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=Path(__file__).resolve().parents[1],
        )
        if check and done.returncode != 0:
            raise AssertionError(f"switchboard {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    run.env = env
    return run


def test_bearer_connector_end_to_end(cli, bearer_server):
    key = bearer_server.keys["alice"]
    cli("connector", "add", "render", bearer_server.url, "--auth", "bearer", "--mode", "shared")
    cli("credential", "set", "render", "--secret-stdin", stdin=key + "\n")
    listed = json.loads(cli("--json", "connector", "list").stdout)
    assert listed[0]["name"] == "render" and listed[0]["auth"] == "bearer" and listed[0]["mode"] == "shared"
    assert listed[0]["status"] == "connected"
    tools = json.loads(cli("tools", "--json").stdout)
    assert {"connector": "render", "agent": None, "name": "whoami"}.items() <= next(
        t for t in tools if t["name"] == "whoami"
    ).items()
    result = json.loads(cli("call", "render", "whoami", "--json").stdout)
    assert "alice" in json.dumps(result)
    failing = cli("call", "render", "always_fails", "--json", check=False)
    assert failing.returncode == 4 and json.loads(failing.stdout)["isError"] is True
    # The secret never reaches argv-visible output, and the store file holds no plaintext copy.
    store_bytes = Path(cli.env["SWITCHBOARD_STORE"]).read_bytes()
    assert key.encode() not in store_bytes


def test_agent_rules_and_errors(cli, api_key_server):
    cli(
        "connector",
        "add",
        "keys",
        api_key_server.url,
        "--auth",
        "api_key_header",
        "--mode",
        "per_agent",
        "--header",
        api_key_server.header,
    )
    cli("agent", "add", "ada")
    assert cli("agent", "update", "ada", "--description", "the night shift").stdout == "updated agent ada\n"
    assert "the night shift" in cli("agent", "list").stdout
    missing = cli("agent", "update", "bob", "--description", "x", check=False)
    assert missing.returncode == 2 and "no agent 'bob'" in missing.stderr
    refused = cli("credential", "set", "keys", "--secret-stdin", stdin="x\n", check=False)
    assert refused.returncode == 2 and "name an agent" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    cli(
        "credential",
        "set",
        "keys",
        "--agent",
        "ada",
        "--secret-stdin",
        stdin=api_key_server.keys["alice"] + "\n",
    )
    bad_json = cli("call", "keys", "whoami", "--agent", "ada", "--args", "{", check=False)
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
    unknown = cli("call", "nope", "whoami", check=False)
    assert unknown.returncode == 2 and "no connector 'nope'" in unknown.stderr


def test_concurrent_cli_processes_share_the_store(cli, bearer_server):
    cli("connector", "add", "render", bearer_server.url, "--auth", "bearer")
    cli("credential", "set", "render", "--secret-stdin", stdin=bearer_server.keys["bob"] + "\n")
    with ThreadPoolExecutor(10) as pool:
        runs = list(
            pool.map(
                lambda i: cli(
                    "call", "render", "echo", "--args", json.dumps({"message": f"m{i}"}), check=False
                ),
                range(10),
            )
        )
    assert [r.returncode for r in runs] == [0] * 10, [r.stderr for r in runs if r.returncode]
    audit_calls = bearer_server.counters()["tool_calls"]
    assert sum(audit_calls["bob"].values()) >= 10


def test_connect_no_browser_completes_oauth(cli, sdk_oauth_server):
    cli("connector", "add", "linear", sdk_oauth_server.url, "--auth", "oauth")
    process = subprocess.Popen(
        [*SWITCHBOARD, "connect", "linear", "--no-browser", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Open this URL to authorize: "), line + process.stderr.read()
        url = line.split(": ", 1)[1].strip()
        with httpx2.Client() as browser:
            callback = browser.get(url).headers["location"]
            assert callback.startswith("http://127.0.0.1:")
            assert browser.get(callback).status_code == 200
        assert process.wait(60) == 0, process.stderr.read()
    finally:
        process.kill()
    listed = json.loads(cli("connector", "list", "--json").stdout)
    assert listed[0]["status"] == "connected" and listed[0]["tools"] == len(sdk_oauth_server.tools)
    assert "whoami" in cli("tools").stdout


def test_connect_times_out_with_a_clear_reason(cli, sdk_oauth_server):
    cli("connector", "add", "linear", sdk_oauth_server.url, "--auth", "oauth")
    done = cli("connect", "linear", "--no-browser", "--timeout", "1", check=False)
    assert done.returncode == 3 and "no authorization callback arrived" in done.stderr


# What a command that only reads the store must not load (issue 12: a CLI that starts like a CLI):
# the dashboard stack, the store's bulk-write columnar path, JSON Schema validation, JOSE, the OAuth
# flows, the HTTP client, (no secret is read) the cipher, DuckDB's Python layer (the engine uses its
# C++ extension, `_duckdb`), the parts of the services and the store's repositories that these
# commands do not use. Checked by module, never by timing.
_NOT_FOR_READ_COMMANDS = (
    "panel",
    "bokeh",
    "pyarrow",
    "numpy",
    "jsonschema",
    "authlib.jose",
    "joserfc",
    "authlib",
    "argon2",  # operators' passwords: hashed only when one is added or signs in
    "core.oauth.flow",
    "core.oauth.provider",
    "core.mcp.client",
    "httpx2",
    "cryptography",
    "duckdb",
    "core.services.authorizer",
    "core.services.calls",
    "core.services.offboarding",
    "core.services.overview",
    "core.services.sync",
    "core.store.repositories.access",
    "core.store.repositories.gateway",
    "core.store.repositories.history",
)


@pytest.mark.parametrize("command", [["connector", "list"], ["tools"], ["agent", "list"]])
def test_read_commands_import_only_what_they_use(cli, command):
    cli("connector", "add", "render", "https://mcp.example.com/mcp", "--auth", "bearer")
    probe = (
        "import json, sys\n"
        "from core.store.duckdb_engine import DuckDBEngine\n"
        "opens, open_file = [], DuckDBEngine._open\n"
        "DuckDBEngine._open = lambda engine, *a, **k: opens.append(a) or open_file(engine, *a, **k)\n"
        "from cli import main\n"
        f"code = main({command!r})\n"
        f"print(json.dumps([code, len(opens), [m for m in {_NOT_FOR_READ_COMMANDS!r} "
        "if m in sys.modules]]), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    code, opens, loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert code == 0, done.stderr
    assert opens == 1  # the schema check and the command share one open of the DuckDB file
    assert loaded == []


def test_parsing_alone_loads_no_services(cli):
    """`--help` and argument errors answer before the services, asyncio or the store load."""
    probe = (
        "import sys\n"
        "from cli.app import build_parser\n"
        "build_parser().parse_args(['connector', 'list'])\n"
        "print([m for m in ('asyncio', 'core.services', 'duckdb') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=cli.env, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_group_module_can_add_to_a_group_another_module_opened():
    """How `agent token create` can live in its own module beside cli/agent.py."""
    import argparse

    from cli._plumbing import Commands

    parser = argparse.ArgumentParser(prog="switchboard")
    commands = Commands(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    commands.group("agent", "manage agents").add("list", lambda args: 0, "list agents")
    commands.group("agent", "manage agents").group("token", "agent tokens").add(
        "create", lambda args: 7, "create a token"
    )
    created = parser.parse_args(["agent", "token", "create"])
    listed = parser.parse_args(["agent", "list"])
    assert (created.handler(created), listed.handler(listed)) == (7, 0)


def test_the_readme_states_every_exit_code():
    import re
    from pathlib import Path

    from cli.app import _EXIT_CODES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    stated = re.search(r"Exit codes: (.*?);", readme, re.DOTALL).group(1)
    codes_in_readme = {int(code) for code in re.findall(r"\b(\d)\b", stated)}
    assert {code for _, code in _EXIT_CODES} | {0, 1, 4} == codes_in_readme


def test_operator_add_takes_the_password_from_stdin_or_a_terminal_never_argv(cli):
    """What `switchboard operator add` refuses before an operator is stored."""
    refusals = {
        ("--role", "admin", "--password-stdin"): "no password on stdin",
        ("--role", "admin"): "no terminal to ask for the password",  # stdin is a pipe here
        ("--role", "root", "--password-stdin"): "invalid choice: 'root'",
        ("--role", "admin", "--password", "hunter2hunter2"): "a password in the command line",
    }
    for args, reason in refusals.items():
        done = cli("operator", "add", "ada", *args, stdin="", check=False)
        assert done.returncode == 2 and reason in done.stderr, (args, done.stderr)
    short = cli("operator", "add", "ada", "--role", "admin", "--password-stdin", stdin="short\n", check=False)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    spaced = cli(
        "operator", "add", "a da", "--role", "admin", "--password-stdin", stdin="x" * 16, check=False
    )
    assert spaced.returncode == 2 and "not an operator name" in spaced.stderr
    assert "hunter2" not in cli("operator", "add", "ada", "--password", "hunter2hunter2", check=False).stderr


def test_operators_are_added_listed_and_removed_and_no_password_or_hash_is_readable(cli):
    cli("operator", "add", "ada", "--role", "admin", "--password-stdin", stdin="ada's long password\n")
    cli("operator", "add", "bob", "--role", "viewer", "--password-stdin", stdin="bob's long password\n")
    listed = json.loads(cli("--json", "operator", "list").stdout)
    assert [(o["name"], o["role"]) for o in listed] == [("ada", "admin"), ("bob", "viewer")]
    assert set(listed[0]) == {"name", "role", "created_at", "updated_at"}
    store = Path(cli.env["SWITCHBOARD_STORE"])
    stored = b"".join(p.read_bytes() for p in store.parent.glob(store.name + "*"))
    assert b"long password" not in stored and b"$argon2id$" not in stored  # the hash is encrypted too

    cli("operator", "remove", "bob")
    missing = cli("operator", "remove", "bob", check=False)
    assert missing.returncode == 2 and "no operator 'bob'" in missing.stderr
    assert [o["name"] for o in json.loads(cli("--json", "operator", "list").stdout)] == ["ada"]
