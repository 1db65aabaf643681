"""The official MCP conformance client suite against `python -m core.conformance`.

Every client scenario the installed suite lists runs on its own, `RUNS` times in a row (5; override
with `SWITCHBOARD_CONFORMANCE_RUNS`), and fails on any FAILURE or WARNING check not baselined in
tests/conformance/expected-failures.yml. There is no retry: a scenario that fails once in five runs is
a failure. Auth scenarios run too (delegated to the OAuth client).

Scenarios run in a private network namespace (`unshare -n`, loopback only) where the system allows
it; where it does not (a non-root developer), they run without one, and say so: the suite's servers
listen on ephemeral localhost ports and the client allows loopback hosts only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from core import conformance

REPO = Path(__file__).resolve().parents[1]
EXPECTED_FAILURES_FILE = REPO / "tests/conformance/expected-failures.yml"
SCENARIO_TIMEOUT_MS = 30_000
RUNS = int(os.environ.get("SWITCHBOARD_CONFORMANCE_RUNS") or 5)


def node_binary() -> Path:
    return Path(os.environ.get("SWITCHBOARD_NODE") or REPO / ".cache/node/node_modules/node/bin/node")


def node_modules() -> Path:
    return Path(os.environ.get("SWITCHBOARD_NODE_MODULES") or REPO / ".cache/node/node_modules")


def suite_entry() -> Path:
    return node_modules() / "@modelcontextprotocol/conformance/dist/index.js"


def suite_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{node_binary().parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop(conformance.ALLOW_HOSTS_ENV, None)  # the entry point allows loopback for itself
    return env


@cache
def unshare_problem() -> str | None:
    """Why scenarios cannot run in a private network namespace, or None if they can."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"unshare -n is not permitted here: {probe.stderr.strip()[:200]}"
    return None


@cache
def client_scenarios() -> tuple[str, ...]:
    if not node_binary().exists() or not suite_entry().exists():
        return ()
    listing = subprocess.run(
        [str(node_binary()), str(suite_entry()), "list", "--client"],
        capture_output=True,
        text=True,
        timeout=60,
        env=suite_env(),
        check=True,
    ).stdout
    return tuple(re.findall(r"^\s+- (\S+)", listing, flags=re.MULTILINE))


def expected_failures() -> dict[str, str]:
    data = yaml.safe_load(EXPECTED_FAILURES_FILE.read_text()) or {}
    entries = data.get("client") or {}
    assert isinstance(entries, dict), "expected-failures.yml: 'client' maps scenario -> reason"
    for scenario, reason in entries.items():
        assert isinstance(reason, str) and reason.strip(), f"expected-failures.yml: {scenario} needs a reason"
    return entries


def run_scenario(scenario: str, output_dir: Path) -> tuple[list[dict], str]:
    """The scenario's checks and the suite's own output (client stdout/stderr included)."""
    command = f"{shlex.quote(sys.executable)} -m core.conformance"
    suite = [
        str(node_binary()),
        str(suite_entry()),
        "client",
        "--command",
        command,
        "--scenario",
        scenario,
        "--timeout",
        str(SCENARIO_TIMEOUT_MS),
        "-o",
        str(output_dir),
    ]
    if unshare_problem() is None:
        command_line = ["unshare", "-n", "sh", "-c", "ip link set lo up && exec " + shlex.join(suite)]
    else:
        command_line = suite
    completed = subprocess.run(
        command_line,
        cwd=REPO,
        env=suite_env(),
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_MS / 1000 + 60,
        check=False,
    )
    found = sorted(output_dir.rglob("checks.json"))
    assert found, (
        f"{scenario}: the suite wrote no checks.json\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    )
    return json.loads(found[-1].read_text()), f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"


def problems(checks: list[dict]) -> list[str]:
    return [
        f"{c.get('id')}: {c.get('status')} {c.get('errorMessage') or ''}".strip()
        for c in checks
        if c.get("status") in ("FAILURE", "WARNING")
    ]


SCENARIOS = client_scenarios()


def test_suite_is_installed() -> None:
    assert SCENARIOS, (
        f"conformance suite not found at {suite_entry()} (run ./dev test, which installs it, "
        "or set SWITCHBOARD_NODE / SWITCHBOARD_NODE_MODULES)"
    )
    for required in (
        "initialize",
        "tools_call",
        "elicitation-sep1034-client-defaults",
        "sse-retry",
        "auth/metadata-default",
    ):
        assert required in SCENARIOS


def test_expected_failures_name_real_scenarios() -> None:
    unknown = set(expected_failures()) - set(SCENARIOS)
    assert not unknown, f"expected-failures.yml lists scenarios the suite does not have: {sorted(unknown)}"


def check_scenario(scenario: str, output_dir: Path, runs: int) -> None:
    """Run `scenario` `runs` times in a row; the first run with a problem fails (no retry)."""
    baseline = expected_failures()
    for run in range(1, runs + 1):
        checks, output = run_scenario(scenario, output_dir / f"run-{run}")
        bad = problems(checks)
        if scenario in baseline:
            assert bad, (
                f"{scenario} now passes (run {run}): remove it from tests/conformance/expected-failures.yml "
                f"(reason was: {baseline[scenario]})"
            )
            continue
        assert not bad, f"{scenario}, run {run} of {runs}:\n" + "\n".join(bad) + "\n" + output
        assert any(c.get("status") == "SUCCESS" for c in checks), f"{scenario}: no SUCCESS check at all"


@pytest.mark.conformance
@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS or ["(suite not installed)"])
def test_client_scenario(scenario: str, tmp_path: Path) -> None:
    if not SCENARIOS:
        pytest.fail("conformance suite not installed; see test_suite_is_installed")
    if (problem := unshare_problem()) is not None:
        print(f"running without a private network namespace: {problem}")
    check_scenario(scenario, tmp_path, RUNS)


@pytest.mark.conformance
def test_scenarios_run_without_a_network_namespace_when_unshare_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer without the right to `unshare -n` still runs every scenario (it used to skip them
    all, silently)."""
    if not SCENARIOS:
        pytest.fail("conformance suite not installed; see test_suite_is_installed")
    refusing = tmp_path / "bin"
    refusing.mkdir()
    (refusing / "unshare").write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    (refusing / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{refusing}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(globals(), "RUNS", 1)
    unshare_problem.cache_clear()
    try:
        assert unshare_problem() is not None
        test_client_scenario("initialize", tmp_path / "out")
    except pytest.skip.Exception as skipped:
        pytest.fail(f"the conformance scenarios were skipped: {skipped}")
    finally:
        unshare_problem.cache_clear()


# --- the entry point itself -----------------------------------------------------------------------


def test_entry_point_usage() -> None:
    assert conformance.main([]) == conformance.EXIT_USAGE


def test_elicitation_defaults() -> None:
    params = {
        "requestedSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "verified": {"type": "boolean", "default": True},
                "nickname": {"type": "string"},
            },
        }
    }
    assert conformance.elicitation_defaults(params) == {
        "action": "accept",
        "content": {"name": "John Doe", "age": 30, "verified": True},
    }
    assert conformance.elicitation_defaults({}) == {"action": "accept", "content": {}}


def test_auth_scenarios_are_delegated(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, dict]] = []

    def fake_run_auth_scenario(url: str, scenario: str, context: dict) -> int:
        seen.append((url, scenario, context))
        return 0

    import core.oauth.conformance as oauth_conformance

    monkeypatch.setattr(oauth_conformance, "run_auth_scenario", fake_run_auth_scenario)
    monkeypatch.setenv("MCP_CONFORMANCE_SCENARIO", "auth/metadata-default")
    monkeypatch.setenv("MCP_CONFORMANCE_CONTEXT", '{"client_id": "x"}')
    monkeypatch.setenv(conformance.ALLOW_HOSTS_ENV, "")  # restored after the test: main() edits it
    assert conformance.main(["http://localhost:1/mcp"]) == 0
    assert seen == [("http://localhost:1/mcp", "auth/metadata-default", {"client_id": "x"})]
    assert "localhost" in os.environ[conformance.ALLOW_HOSTS_ENV]


def test_missing_oauth_entry_point_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "core.oauth.conformance", None)  # makes the import fail
    monkeypatch.setenv("MCP_CONFORMANCE_SCENARIO", "auth/metadata-default")
    assert conformance.main(["http://localhost:1/mcp"]) == conformance.EXIT_NOT_IMPLEMENTED
    assert "OAuth conformance client is not available" in capsys.readouterr().err
