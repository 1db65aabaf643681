"""Offboarding (#17.5): revoke everything of an agent or a connector at the sample authorization
server (RFC 7009), delete it locally whatever the server says, cancel what is in flight, and report
per server. Every test runs on both store engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.errors import AuthRequired, NotFoundError
from core.net import NetworkPolicy
from core.services import Switchboard
from tests.fixtures.raw_mcp import initialize_params, loopback_client, post_rpc

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")


@pytest.fixture
def paths(store_location, tmp_path, monkeypatch):
    """Each test once per engine (DuckDB file, PostgreSQL database)."""
    store, key_file = store_location, tmp_path / "keys" / "store.key"
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(key_file))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    return store, key_file


@pytest.fixture
def service(paths):
    return Switchboard.open(str(paths[0]), policy=LOOPBACK, redirect_uri="http://127.0.0.1:9/oauth/callback")


async def _consent(service: Switchboard, connector: str, agent: str | None = None) -> dict[str, str]:
    """Start an authorization and give consent at the sample AS; the callback's parameters, not
    yet delivered (a browser tab left open)."""
    url = await service.start_authorization(connector, agent)
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code in (302, 303, 307), answer.status_code
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


async def _authorize(service: Switchboard, connector: str, agent: str | None = None) -> None:
    """The operator's browser at the sample AS (it auto-approves), then the callback."""
    done = await service.complete_authorization(await _consent(service, connector, agent))
    assert done.ok, done.message


def _access_token(service: Switchboard, connector: str, agent: str | None) -> str:
    store = service.store
    key = store.credentials.resolve(store.connectors.named(connector).id, store.agents.named(agent).id)
    return service.context.oauth_storage.load_tokens(key).access_token


def _server_accepts(server, access_token: str) -> bool:
    """Whether the sample MCP server still takes this access token (an MCP initialize with it)."""
    with loopback_client() as client:
        answer = post_rpc(
            client,
            server.url,
            "initialize",
            initialize_params(),
            headers={"Authorization": f"Bearer {access_token}"},
        )
    assert answer.status_code in (200, 401), answer.status_code
    return answer.status_code == 200


async def _agent_world(service: Switchboard, oauth_server, bearer_server) -> str:
    """ops-bot with its own OAuth account and its own bearer key, one gateway token, and a shared
    OAuth connector it uses but does not own."""
    await service.add_agent("ops-bot")
    await service.add_connector("linear", oauth_server.url, "oauth", "per_agent")
    await service.add_connector("render", bearer_server.url, "bearer", "per_agent")
    await _authorize(service, "linear", "ops-bot")
    await service.set_secret("render", bearer_server.keys["alice"], agent="ops-bot")
    await service.access().create_token("ops-bot", label="laptop")
    return _access_token(service, "linear", "ops-bot")


async def test_offboarding_an_agent_revokes_at_the_server_and_its_calls_then_fail(
    service, sdk_oauth_server, bearer_server
):
    token = await _agent_world(service, sdk_oauth_server, bearer_server)
    assert _server_accepts(sdk_oauth_server, token)
    assert sdk_oauth_server.counters()["revocations"] == 0

    report = await service.offboard_agent("ops-bot")

    assert sdk_oauth_server.counters()["revocations"] >= 1
    assert not _server_accepts(sdk_oauth_server, token)  # dead at the server, not only here
    by_connector = {r.connector: r for r in report.credentials}
    assert by_connector["linear"].outcome == "revoked"
    assert by_connector["linear"].server == sdk_oauth_server.issuer
    assert by_connector["render"].outcome == "deleted_locally"
    assert "revoke it at the server" in by_connector["render"].reason
    assert report.gateway_tokens_revoked == 1 and not report.removed
    assert report.counts() == {"revoked": 1, "deleted_locally": 1, "failed": 0}
    assert set(report.by_server()) == {sdk_oauth_server.issuer, bearer_server.origin}
    # Nothing of the agent is left to call with, here or through the gateway.
    for connector in ("linear", "render"):
        with pytest.raises(AuthRequired):
            await service.call_tool(connector, "whoami", {}, agent="ops-bot")
    assert {c.status for c in await service.credentials_for_agent("ops-bot")} == {"missing"}
    assert [t.status() for t in await service.access().list_tokens("ops-bot")] == ["revoked"]
    assert [a.name for a in await service.list_agents()] == ["ops-bot"]  # offboarded, not removed
    # The report holds no secret.
    assert token not in json.dumps(report.as_dict())
    await service.aclose()


async def test_a_failed_revocation_is_reported_and_the_credential_still_deleted(
    service, sdk_oauth_server, bearer_server
):
    token = await _agent_world(service, sdk_oauth_server, bearer_server)
    sdk_oauth_server.fail_next("/revoke", status=503)

    report = await service.offboard_agent("ops-bot")

    linear = next(r for r in report.credentials if r.connector == "linear")
    assert linear.outcome == "failed" and "HTTP 503" in linear.reason
    assert sdk_oauth_server.counters()["revocations"] == 0
    assert _server_accepts(sdk_oauth_server, token)  # the server kept it: hence "failed"
    assert {c.status for c in await service.credentials_for_agent("ops-bot")} == {"missing"}
    assert "1 failed to revoke" in report.summary()
    steps = [s["step"] for s in await service.auth_trace("linear", "ops-bot")]
    assert "revoke" in steps  # the attempt is in the auth trace
    await service.aclose()


async def test_offboarding_an_agent_leaves_shared_credentials_alone(service, sdk_oauth_server, bearer_server):
    await service.add_agent("ops-bot")
    await service.add_connector("shared-linear", sdk_oauth_server.url, "oauth")
    await _authorize(service, "shared-linear")

    report = await service.offboard_agent("ops-bot")

    assert report.credentials == () and sdk_oauth_server.counters()["revocations"] == 0
    assert not (await service.call_tool("shared-linear", "whoami", {}, agent="ops-bot")).is_error
    await service.aclose()


async def test_removing_a_connector_revokes_every_credential_first(service, sdk_oauth_server):
    await service.add_connector("linear", sdk_oauth_server.url, "oauth", "per_agent")
    tokens = []
    for agent in ("alice", "bob"):
        await service.add_agent(agent)
        sdk_oauth_server.next_subject(agent)
        await _authorize(service, "linear", agent)
        tokens.append(_access_token(service, "linear", agent))

    report = await service.remove_connector("linear")

    assert report.removed and {r.agent for r in report.credentials} == {"alice", "bob"}
    assert {r.outcome for r in report.credentials} == {"revoked"}
    assert sdk_oauth_server.counters()["revocations"] >= 2
    for token in tokens:
        assert not _server_accepts(sdk_oauth_server, token)
    with pytest.raises(NotFoundError):
        await service.get_connector("linear")
    await service.aclose()


async def test_removing_an_agent_revokes_first_then_deletes_it(service, sdk_oauth_server, bearer_server):
    token = await _agent_world(service, sdk_oauth_server, bearer_server)

    report = await service.remove_agent("ops-bot")

    assert report.removed and report.counts()["revoked"] == 1
    assert not _server_accepts(sdk_oauth_server, token)
    assert await service.list_agents() == []
    await service.aclose()


async def test_disconnect_reports_what_the_server_did(service, sdk_oauth_server):
    await service.add_connector("linear", sdk_oauth_server.url, "oauth")
    await _authorize(service, "linear")
    removal = await service.disconnect("linear")
    assert removal.outcome == "revoked" and removal.agent is None and removal.kind == "oauth"
    await service.aclose()


async def _callback_brings_nothing_back(service: Switchboard, callback: dict[str, str], server) -> None:
    exchanges = server.counters()["token_requests"].get("authorization_code", 0)
    outcome = await service.complete_authorization(callback)
    assert not outcome.ok and outcome.message
    assert server.counters()["token_requests"].get("authorization_code", 0) == exchanges  # no code spent


async def test_offboarding_an_agent_cancels_its_authorizations_in_flight(
    service, sdk_oauth_server, bearer_server
):
    await _agent_world(service, sdk_oauth_server, bearer_server)
    callback = await _consent(service, "linear", "ops-bot")  # a reconnect consented to, not yet back

    await service.offboard_agent("ops-bot")

    await _callback_brings_nothing_back(service, callback, sdk_oauth_server)
    assert {c.status for c in await service.credentials_for_agent("ops-bot")} == {"missing"}
    await service.aclose()


async def test_disconnecting_and_offboarding_a_connector_cancel_what_is_in_flight(service, sdk_oauth_server):
    await service.add_connector("linear", sdk_oauth_server.url, "oauth", "per_agent")
    for agent in ("alice", "bob"):
        await service.add_agent(agent)
    await _authorize(service, "linear", "alice")
    alice_again, bob_first = (
        await _consent(service, "linear", "alice"),
        await _consent(service, "linear", "bob"),
    )

    await service.disconnect("linear", "alice")
    await _callback_brings_nothing_back(service, alice_again, sdk_oauth_server)
    await service.offboard_connector("linear")  # bob's first connect was in flight: cancelled too
    await _callback_brings_nothing_back(service, bob_first, sdk_oauth_server)

    for agent in ("alice", "bob"):
        assert {c.status for c in await service.credentials_for_agent(agent)} == {"missing"}
    await service.aclose()


def _cli(paths, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SWITCHBOARD_STORE": str(paths[0]),
        "SWITCHBOARD_KEY_FILE": str(paths[1]),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
    }
    env.pop("SWITCHBOARD_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )


async def test_cli_agent_offboard_prints_the_report_per_server(
    paths, service, sdk_oauth_server, bearer_server
):
    await _agent_world(service, sdk_oauth_server, bearer_server)
    await service.aclose()
    sdk_oauth_server.fail_next("/revoke", status=500)

    failed = _cli(paths, "agent", "offboard", "ops-bot")

    assert failed.returncode == 3, failed.stderr  # deleted here, but a server did not revoke
    lines = failed.stdout.splitlines()
    assert lines[0].startswith("agent ops-bot: 0 revoked, 1 deleted locally only, 1 failed")
    assert f"  {sdk_oauth_server.issuer}" in lines and f"  {bearer_server.origin}" in lines
    assert any("linear for ops-bot: failed (" in line and "HTTP 500" in line for line in lines)

    again = _cli(paths, "--json", "agent", "offboard", "ops-bot")  # nothing left: still fine
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["credentials"] == []
