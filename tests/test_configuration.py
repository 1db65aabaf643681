"""Configuration as code (#17.6): `export` writes YAML without secrets, `import` applies it
idempotently and reports what changes; an invalid file is refused whole, each problem with its line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.access.policy import PolicyRule
from core.errors import InvalidConfigFile
from core.net import NetworkPolicy
from core.services import Switchboard

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
CLIENT_SECRET = "client-secret-canary-7f3a"


@pytest.fixture
def stores(engine, request, tmp_path):
    """`stores(name)`: a fresh store location per name on this test's engine (each test runs on both)."""

    def location(name: str) -> str:
        if engine == "postgresql":
            server = request.getfixturevalue("postgres_server")
            database = server.create_database()
            request.addfinalizer(lambda: server.drop_database(database))
            return server.url(database)
        return str(tmp_path / name / "switchboard.duckdb")

    return location


def _open(stores, name: str) -> Switchboard:
    return Switchboard.open(stores(name), policy=LOOPBACK)


@pytest.fixture(autouse=True)
def _key_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)


async def _team(service: Switchboard) -> None:
    """One of everything the file holds. No server is contacted: adding a connector only checks it."""
    await service.add_connector(
        "linear",
        "http://127.0.0.1:9101/mcp",
        "oauth",
        scopes="read write",
        client_id="sb-client",
        client_secret=CLIENT_SECRET,
    )
    await service.add_connector(
        "keys", "http://127.0.0.1:9102/mcp", "api_key_header", "per_agent", header_name="X-API-Key"
    )
    await service.add_connector("plain", "http://localhost:9103/mcp", "none")
    await service.add_agent("ops-bot", "runs the night shift")
    await service.add_agent("support")
    access = service.access()
    await access.add_rule("ops-bot", PolicyRule("deny", annotation="destructiveHint"))
    await access.add_rule("ops-bot", PolicyRule("allow", connector="linear", tool="list_*"))
    await access.set_limits("ops-bot", requests_per_minute=120, max_concurrent_calls=4)
    await access.set_approval_mode("keys", "manual")


async def test_export_then_import_elsewhere_round_trips_and_a_second_import_changes_nothing(stores):
    source = _open(stores, "a")
    await _team(source)
    exported = await source.export_config()
    assert CLIENT_SECRET not in exported
    document = yaml.safe_load(exported)
    assert [c["name"] for c in document["connectors"]] == ["keys", "linear", "plain"]
    linear = next(c for c in document["connectors"] if c["name"] == "linear")
    assert linear["client_id"] == "sb-client" and linear["scopes"] == ["read", "write"]
    assert "client_secret" not in linear
    ops = next(a for a in document["agents"] if a["name"] == "ops-bot")
    assert ops["policy"]["requests_per_minute"] == 120 and len(ops["policy"]["rules"]) == 2

    target = _open(stores, "b")
    planned = await target.import_config(exported, source="team.yaml", dry_run=True)
    assert [c.describe() for c in planned.changes] == [
        "create connector keys",
        "create connector linear",
        "create connector plain",
        "create agent ops-bot",
        "update policy ops-bot: rules, requests_per_minute, max_concurrent_calls",
        "create agent support",
    ]
    assert await target.list_connectors() == [] and await target.list_agents() == []  # a dry run

    applied = await target.import_config(exported, source="team.yaml")
    assert applied.changes == planned.changes and not applied.dry_run
    assert await target.export_config() == exported
    again = await target.import_config(exported, source="team.yaml")
    assert again.changes == () and again.describe().startswith("team.yaml: nothing to change")
    assert await target.access().approval_mode("keys") == "manual"
    await source.aclose()
    await target.aclose()


async def test_import_changes_only_what_differs_and_keeps_what_the_file_does_not_name(stores):
    service = _open(stores, "a")
    await _team(service)
    document = yaml.safe_load(await service.export_config())
    keys = next(c for c in document["connectors"] if c["name"] == "keys")
    keys.update(credential_mode="shared", approval_mode="auto")
    document["connectors"] = [keys]  # linear and plain are left out: kept, not deleted
    document["agents"] = [{"name": "ops-bot", "description": "nights and weekends", "policy": {"rules": []}}]
    text = yaml.safe_dump(document, sort_keys=False)

    planned = await service.import_config(text, source="edit.yaml", dry_run=True)
    assert [c.describe() for c in planned.changes] == [
        "update connector keys: credential_mode, approval_mode",
        "update agent ops-bot: description",
        "update policy ops-bot: rules, requests_per_minute, max_concurrent_calls",
    ]
    assert "not in the file, kept as they are: connector linear, connector plain, agent support" in (
        planned.describe()
    )
    assert (await service.get_connector("keys")).credential_mode == "per_agent"  # dry run

    await service.import_config(text, source="edit.yaml")
    assert (await service.get_connector("keys")).credential_mode == "shared"
    assert (await service.access().policy("ops-bot")).rules == ()
    assert {a.name: a.description for a in await service.list_agents()} == {
        "ops-bot": "nights and weekends",
        "support": "",
    }
    assert {c.name for c in await service.list_connectors()} == {"keys", "linear", "plain"}
    assert (await service.import_config(text, source="edit.yaml")).changes == ()
    await service.aclose()


INVALID = """\
version: 1
connectors:
  - name: linear
    url: http://127.0.0.1:9101/mcp
    auth_type: oauth
    client_secret: hunter2
  - name: keys
    url: http://127.0.0.1:9102/mcp
    auth_type: api_key_header
    credential_mode: per-agent
  - name: linear
    url: ftp://127.0.0.1/mcp
    auth_type: magic
  - url: http://127.0.0.1:9104/mcp
    auth_type: none
    colour: blue
agents:
  - name: ops-bot
    policy:
      rules:
        - effect: deny
          annotation: dangerousHint
      requests_per_minute: -5
"""


async def test_an_invalid_file_reports_every_problem_with_its_line_and_changes_nothing(stores):
    service = _open(stores, "a")
    await service.add_agent("support")
    with pytest.raises(InvalidConfigFile) as caught:
        await service.import_config(INVALID, source="bad.yaml")
    problems = caught.value.problems
    by_line = {}
    for problem in problems:
        where, _, message = problem.partition(": ")
        assert where.startswith("bad.yaml:"), problem
        by_line.setdefault(int(where.split(":")[1]), []).append(message)
    assert "secrets are not imported" in " ".join(by_line[6])
    assert "credential_mode is one of shared, per_agent, not 'per-agent'" in by_line[10]
    assert "api_key_header auth needs a header name" in by_line[7]  # the entry's line: the key is missing
    assert "connector 'linear' is listed twice" in by_line[11]
    assert any("ftp" in m or "http" in m for m in by_line[12])
    assert any(m.startswith("auth_type is one of") for m in by_line[13])
    assert "name is required" in by_line[14]
    assert any("unknown key 'colour'" in m for m in by_line[16])
    assert any("unknown annotation 'dangerousHint'" in m for m in by_line[21])
    assert any("requests_per_minute is a positive whole number" in m for m in by_line[23])
    assert "hunter2" not in str(caught.value)
    assert "nothing was changed" in str(caught.value)
    assert await service.list_connectors() == []
    assert [a.name for a in await service.list_agents()] == ["support"]
    await service.aclose()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("connectors:\n  - name: a\n    url: [unclosed\n", 4, "not valid YAML"),
        ("", 1, "the file is empty"),
        ("- just\n- a list\n", 1, "the file is a mapping of version, connectors, agents"),
        ("version: 2\n", 1, "version 2 is not supported"),
        ("agents:\n  - name: x\n    name: y\n", 3, "'name' is given twice"),
        ("connectors: {}\n", 1, "connectors is a list"),
        (
            "connectors:\n  - name: far\n    url: http://203.0.113.9:1/mcp\n    auth_type: none\n",
            3,
            "not allowed",
        ),
    ],
)
async def test_each_kind_of_error_names_its_line(stores, text, line, message):
    service = _open(stores, "a")
    with pytest.raises(InvalidConfigFile) as caught:
        await service.import_config(text, source="f.yaml", dry_run=True)
    assert any(p.startswith(f"f.yaml:{line}: ") and message in p for p in caught.value.problems), (
        caught.value.problems
    )
    await service.aclose()


def test_cli_export_and_import(tmp_path):
    env = {
        **os.environ,
        "SWITCHBOARD_KEY_FILE": str(tmp_path / "store.key"),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
    }
    env.pop("SWITCHBOARD_KEY", None)

    def cli(store: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            capture_output=True,
            text=True,
            env={**env, "SWITCHBOARD_STORE": str(tmp_path / store / "s.duckdb")},
            timeout=120,
            cwd=Path(__file__).resolve().parents[1],
            check=False,
        )

    assert (
        cli("a", "connector", "add", "plain", "http://127.0.0.1:9103/mcp", "--auth", "none").returncode == 0
    )
    assert cli("a", "agent", "add", "ops-bot").returncode == 0
    exported = cli("a", "export", "--output", str(tmp_path / "team.yaml"))
    assert exported.returncode == 0, exported.stderr
    dry = cli("b", "import", str(tmp_path / "team.yaml"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[:3] == [
        f"{tmp_path / 'team.yaml'}: would change 2",
        "  create connector plain",
        "  create agent ops-bot",
    ]
    assert cli("b", "import", str(tmp_path / "team.yaml")).returncode == 0
    assert cli("b", "export").stdout == (tmp_path / "team.yaml").read_text()
    (tmp_path / "bad.yaml").write_text("connectors:\n  - name: x\n    auth_type: none\n")
    bad = cli("b", "import", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 2
    assert f"{tmp_path / 'bad.yaml'}:2: url is required" in bad.stderr
