"""The agent gateway end to end: a `switchboard gateway` process over a real store, in front of the
sample servers, driven by clients nobody here wrote (the official MCP Python SDK client in both
revisions) and by raw HTTP for the refusals. Upstream servers count what reached them.

One gateway and one set of servers per module; the gateway polls the store every 0.1 s, and a test
that changes the store waits (`settle`) until two polls have begun after its change, so the gateway
has seen it — the same contract as in production (one poll interval), not a retry.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from core.access import AgentAccess, PolicyRule
from core.net import NetworkPolicy
from core.services import Switchboard
from sample_servers.launch import start
from tests.fixtures.postgres import ENGINES

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
MODES = ["legacy", "2026-07-28"]
pytestmark = pytest.mark.timeout(120)


class Gateway:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "gateway", "--port", "0", "--poll-interval", "0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        line = self.process.stdout.readline()
        assert "listening on http://" in line, line + self.process.stdout.read()
        self.base = line.split("listening on ")[1].split("/agents")[0]
        self.http = httpx2.Client(trust_env=False, timeout=10)

    def url(self, agent: str) -> str:
        return f"{self.base}/agents/{agent}/mcp"

    def polls(self) -> int:
        return self.http.get(self.base + "/healthz").json()["polls"]

    def settle(self) -> None:
        """Return once a poll that began after now has finished."""
        target, deadline = self.polls() + 2, time.monotonic() + 10
        while self.polls() < target:
            assert time.monotonic() < deadline, "the gateway stopped polling the store"
            time.sleep(0.02)

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module", params=ENGINES)
def world(request, tmp_path_factory):
    """Sample servers, a store with agents alice, bob and carol, connectors, tokens, a gateway; once
    on each store engine (the whole module runs twice)."""
    root = tmp_path_factory.mktemp("gateway")
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres_server")
        database = postgres.create_database()
        request.addfinalizer(lambda: postgres.drop_database(database))
        store = postgres.url(database)
    else:
        store = str(root / "data" / "store.duckdb")
    env = {
        **os.environ,
        "SWITCHBOARD_STORE": store,
        "SWITCHBOARD_KEY_FILE": str(root / "keys" / "store.key"),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
    }
    env.pop("SWITCHBOARD_KEY", None)
    saved = {k: os.environ.get(k) for k in ("SWITCHBOARD_KEY_FILE", "SWITCHBOARD_KEY", "SWITCHBOARD_STORE")}
    os.environ.update({k: env[k] for k in ("SWITCHBOARD_KEY_FILE", "SWITCHBOARD_STORE")})
    os.environ.pop("SWITCHBOARD_KEY", None)
    servers = {
        "render": start("bearer"),
        "plain": start("plain", json_response=True),
        "pages": start("paginated"),
        "linear": start("sdk_oauth"),
    }
    gateway = None
    try:
        tokens = asyncio.run(_populate(env["SWITCHBOARD_STORE"], servers))
        gateway = Gateway(env)
        yield {
            "gateway": gateway,
            "servers": servers,
            "tokens": tokens,
            "store": env["SWITCHBOARD_STORE"],
            "home": root,
            "env": env,
        }
    finally:
        if gateway is not None:
            gateway.stop()
        for server in servers.values():
            server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _populate(store: str, servers) -> dict[str, str]:
    board = Switchboard.open(store, policy=LOOPBACK, redirect_uri="http://127.0.0.1:9/oauth/callback")
    access = AgentAccess(board.store)
    try:
        for agent in ("alice", "bob", "carol"):
            await board.add_agent(agent)
        await board.add_connector("render", servers["render"].url, "bearer", "per_agent")
        for agent in ("alice", "bob"):
            await board.set_secret("render", servers["render"].keys[agent], agent=agent)
        for name in ("plain", "pages"):
            await board.add_connector(name, servers[name].url, "none")
            assert (await board.sync(name)).ok
        await board.add_connector("linear", servers["linear"].url, "oauth")
        await _authorize(board, "linear")
        return {
            agent: (await access.create_token(agent, label="tests")).token
            for agent in ("alice", "bob", "carol")
        }
    finally:
        await board.aclose()


async def _authorize(board: Switchboard, connector: str) -> None:
    """The CLI's loopback OAuth flow, with the browser's part done by httpx (the AS auto-approves)."""
    browsing: list[asyncio.Task] = []

    async def browse(url: str) -> None:
        async with httpx2.AsyncClient() as browser:
            answer = await browser.get(url)
            params = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
            redirect_uri = dict(parse_qsl(urlsplit(url).query))["redirect_uri"]
            await browser.get(f"{redirect_uri}?{urlencode(params)}")

    outcome = await board.connect_cli(
        connector,
        timeout=30,
        on_authorization_url=lambda url: browsing.append(asyncio.create_task(browse(url))),
    )
    await asyncio.gather(*browsing)
    assert outcome.status == "connected", outcome


@asynccontextmanager
async def sdk_client(world, agent: str, mode: str = "legacy", token: str | None = None):
    headers = {"Authorization": f"Bearer {token or world['tokens'][agent]}"}
    async with httpx2.AsyncClient(headers=headers, trust_env=False, timeout=30) as http:
        transport = streamable_http_client(world["gateway"].url(agent), http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


async def names(client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


def run(coroutine):
    return asyncio.run(coroutine)


async def _admin(world, work):
    board = Switchboard.open(world["store"], policy=LOOPBACK)
    try:
        return await work(board, AgentAccess(board.store))
    finally:
        await board.aclose()


# --- identities ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_each_agent_calls_with_its_own_credential(world, mode):
    async def go():
        seen = {}
        for agent in ("alice", "bob"):
            async with sdk_client(world, agent, mode) as client:
                assert client.protocol_version == ("2025-11-25" if mode == "legacy" else mode)
                listed = await names(client)
                assert {"render__whoami", "plain__echo", "linear__whoami"} <= listed
                result = await client.call_tool("render__whoami", {})
                seen[agent] = result.structured_content["subject"]
                echoed = await client.call_tool("plain__echo", {"message": f"hi {agent}"})
                assert echoed.content[0].text == f"hi {agent}"
        assert seen == {"alice": "alice", "bob": "bob"}

    run(go())
    calls = world["servers"]["render"].counters()["tool_calls"]
    assert calls["alice"]["whoami"] >= 1 and calls["bob"]["whoami"] >= 1


def test_agent_without_its_own_credential_sees_no_tools_of_that_connector(world):
    async def go():
        async with sdk_client(world, "carol") as client:
            listed = await names(client)
            assert not any(n.startswith("render__") for n in listed)
            assert "plain__echo" in listed  # a connector without auth serves everyone
            with pytest.raises(Exception, match="credential set render --agent carol"):
                await client.call_tool("render__whoami", {})

    before = world["servers"]["render"].counters()["requests_total"]
    run(go())
    assert world["servers"]["render"].counters()["requests_total"] == before


# --- refusals of point 2 --------------------------------------------------------------------------


def _post(world, agent: str, token: str | None, body: dict | None = None):
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return world["gateway"].http.post(world["gateway"].url(agent), headers=headers, json=body or INITIALIZE)


def test_every_bad_token_is_401_and_nothing_reaches_an_upstream(world):
    expired = run(_admin(world, lambda b, a: a.create_token("alice", expires_in_days=1e-6)))
    revoked = run(_admin(world, lambda b, a: a.create_token("alice")))
    run(_admin(world, lambda b, a: a.revoke_token("alice", revoked.id)))
    world["gateway"].settle()
    before = {name: s.counters()["requests_total"] for name, s in world["servers"].items()}
    cases = {
        "none": None,
        "unknown": "swb_" + "x" * 43,
        "expired": expired.token,
        "revoked": revoked.token,
        "another agent's": world["tokens"]["bob"],
    }
    for case, token in cases.items():
        answer = _post(world, "alice", token)
        assert answer.status_code == 401, case
        assert answer.headers["www-authenticate"].startswith('Bearer realm="switchboard-gateway"'), case
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "plain__echo", "arguments": {}},
        }
        assert _post(world, "alice", token, call).status_code == 401, case
    assert _post(world, "nobody", world["tokens"]["alice"]).status_code == 401
    assert {name: s.counters()["requests_total"] for name, s in world["servers"].items()} == before


def test_a_cross_origin_request_is_refused_before_anything_else(world):
    gateway = world["gateway"]
    headers = {"authorization": f"Bearer {world['tokens']['alice']}", "origin": "http://evil.example"}
    answer = gateway.http.post(gateway.url("alice"), headers=headers, json=INITIALIZE)
    assert answer.status_code == 403
    headers["origin"] = gateway.base  # the gateway's own origin is fine
    assert gateway.http.post(gateway.url("alice"), headers=headers, json=INITIALIZE).status_code == 200
    del headers["origin"]
    headers["host"] = "evil.example"  # DNS rebinding: a loopback gateway answers only to loopback names
    assert gateway.http.post(gateway.url("alice"), headers=headers, json=INITIALIZE).status_code == 403


def test_a_session_of_one_token_is_not_usable_with_another(world):
    opened = _post(world, "alice", world["tokens"]["alice"])
    session = opened.headers["mcp-session-id"]
    issued = run(_admin(world, lambda b, a: a.create_token("alice")))
    world["gateway"].settle()
    headers = {
        "authorization": f"Bearer {issued.token}",
        "mcp-session-id": session,
        "mcp-protocol-version": "2025-11-25",
        "accept": "application/json, text/event-stream",
    }
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    answer = world["gateway"].http.post(world["gateway"].url("alice"), headers=headers, json=body)
    assert answer.status_code == 404
    headers["authorization"] = f"Bearer {world['tokens']['alice']}"
    assert (
        world["gateway"].http.post(world["gateway"].url("alice"), headers=headers, json=body).status_code
        == 200
    )


# --- policy, pinning, pagination ------------------------------------------------------------------


def test_denied_tools_are_absent_and_refused(world):
    run(_admin(world, lambda b, a: a.add_rule("alice", PolicyRule("deny", "render", "delete_*"))))
    run(
        _admin(
            world, lambda b, a: a.add_rule("alice", PolicyRule("deny", "plain", annotation="destructiveHint"))
        )
    )
    world["gateway"].settle()
    before = world["servers"]["render"].counters()["tool_calls"].get("alice", {}).get("delete_item", 0)

    async def go():
        async with sdk_client(world, "alice", "2026-07-28") as client:
            listed = await names(client)
            assert "render__delete_item" not in listed and "plain__delete_item" not in listed
            assert "plain__list_items" in listed  # read-only: not destructive
            assert "plain__echo" not in listed  # un-annotated: destructive by MCP's defaults
            with pytest.raises(Exception, match="denied by the rule"):
                await client.call_tool("render__delete_item", {"item_id": "x"})
        async with sdk_client(world, "bob") as client:
            assert "render__delete_item" in await names(client)

    try:
        run(go())
    finally:
        run(_admin(world, lambda b, a: a.remove_rule("alice", 2)))
        run(_admin(world, lambda b, a: a.remove_rule("alice", 1)))
        world["gateway"].settle()
    after = world["servers"]["render"].counters()["tool_calls"].get("alice", {}).get("delete_item", 0)
    assert after == before


def test_a_changed_tool_is_quarantined_until_approved_and_listeners_hear_of_it(world):
    server = world["servers"]["plain"]

    async def go():
        async with sdk_client(world, "bob") as legacy, sdk_client(world, "bob", "2026-07-28") as modern:
            assert "plain__echo" in await names(legacy)
            async with _listen(world, "bob") as heard:
                server.set_tool_description("echo", "Echo, and also mail the message to someone.")
                await _admin(world, lambda b, a: b.sync("plain"))
                await asyncio.wait_for(heard.wait(), 10)
            assert "plain__echo" not in await names(legacy)
            assert "plain__echo" not in await names(modern)
            with pytest.raises(Exception, match="quarantined"):
                await modern.call_tool("plain__echo", {"message": "x"})
            reviews = await _admin(world, lambda b, a: a.reviews("plain"))
            echo = next(r for r in reviews if r.name == "echo")
            assert echo.state == "quarantined" and echo.changed_fields() == ["description"]
            await _admin(world, lambda b, a: a.approve("plain", ["echo"]))
            await asyncio.to_thread(world["gateway"].settle)
            assert "plain__echo" in await names(legacy)
            assert (await legacy.call_tool("plain__echo", {"message": "again"})).content[0].text == "again"

    calls_before = server.counters()["rpc_methods"].get("tools/call", 0)
    try:
        run(go())
    finally:
        server.set_tool_description("echo", None)
        run(_admin(world, lambda b, a: b.sync("plain")))
        run(_admin(world, lambda b, a: a.approve("plain")))
    assert (
        server.counters()["rpc_methods"].get("tools/call", 0) == calls_before + 1
    )  # the refused call never left


@asynccontextmanager
async def _listen(world, agent: str):
    """Both notification channels open for `agent`: a 2025-11-25 session's GET stream and a
    2026-07-28 subscriptions/listen stream; the event is set once both carried list_changed."""
    token = world["tokens"][agent]
    url = world["gateway"].url(agent)
    auth = {"authorization": f"Bearer {token}"}
    accept = {"accept": "application/json, text/event-stream"}
    ready = {"get": asyncio.Event(), "listen": asyncio.Event()}
    heard = {"get": asyncio.Event(), "listen": asyncio.Event()}
    async with httpx2.AsyncClient(trust_env=False, timeout=30) as http:
        opened = await http.post(url, headers={**auth, **accept}, json=INITIALIZE)
        get = {
            "method": "GET",
            "url": url,
            "headers": {
                **auth,
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
                "accept": "text/event-stream",
            },
        }
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        listen = {
            "method": "POST",
            "url": url,
            "headers": {
                **auth,
                **accept,
                "mcp-protocol-version": "2026-07-28",
                "mcp-method": "subscriptions/listen",
            },
            "json": {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "subscriptions/listen",
                "params": {"notifications": {"toolsListChanged": True}, "_meta": meta},
            },
        }

        async def read(kind: str, request: dict) -> None:
            async with http.stream(**request) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith(":") or "acknowledged" in line:
                        ready[kind].set()
                    if "notifications/tools/list_changed" in line:
                        heard[kind].set()
                        return

        tasks = [asyncio.create_task(read("get", get)), asyncio.create_task(read("listen", listen))]
        both = asyncio.Event()
        waiter = asyncio.create_task(_all_set(heard.values(), both))
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready.values())), 10)
            yield both
        finally:
            for task in [*tasks, waiter]:
                task.cancel()


async def _all_set(events, done: asyncio.Event) -> None:
    for event in events:
        await event.wait()
    done.set()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def test_a_paginated_upstream_is_listed_whole(world):
    async def go():
        async with sdk_client(world, "alice", "2026-07-28") as client:
            return await names(client)

    listed = run(go())
    assert {f"pages__{tool}" for tool in world["servers"]["pages"].tools} <= listed
    assert len(world["servers"]["pages"].tools) > 5  # more than one upstream page


def test_an_oauth_token_that_expires_mid_session_is_refreshed(world):
    server = world["servers"]["linear"]

    async def go():
        async with sdk_client(world, "alice") as client:
            first = await client.call_tool("linear__whoami", {})
            server.expire_tokens()
            before = server.counters()["refresh_requests"]
            second = await client.call_tool("linear__whoami", {})
            assert not second.is_error
            assert second.structured_content["subject"] == first.structured_content["subject"]
            assert server.counters()["refresh_requests"] == before + 1

    run(go())


# --- limits, audit, CLI ---------------------------------------------------------------------------


def test_over_its_rate_an_agent_gets_429_with_retry_after(world):
    run(_admin(world, lambda b, a: a.set_limits("carol", requests_per_minute=3)))
    world["gateway"].settle()
    try:
        answers = [_post(world, "carol", world["tokens"]["carol"]) for _ in range(5)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        assert answers[3].status_code == 429 and int(answers[3].headers["retry-after"]) >= 1
    finally:
        run(_admin(world, lambda b, a: a.set_limits("carol", requests_per_minute=0)))
        world["gateway"].settle()


def test_gateway_calls_are_audited_with_token_and_outcome(world):
    async def go():
        async with sdk_client(world, "bob") as client:
            await client.call_tool("plain__echo", {"message": "audited", "api_key": "sk-not-in-the-log"})
            with pytest.raises(Exception, match="no tool named"):
                await client.call_tool("plain__no_such_tool", {})

    run(go())
    tokens = run(_admin(world, lambda b, a: a.list_tokens("bob")))
    deadline = time.monotonic() + 10
    while True:
        rows = run(_admin(world, lambda b, a: b.audit(agent="bob", limit=20)))
        mine = [
            r
            for r in rows
            if r["operator"] == "gateway"
            and (r["tool"] == "plain__no_such_tool" or (r["arguments"] or {}).get("message") == "audited")
        ]
        if len(mine) >= 2 or time.monotonic() > deadline:  # written in batches, off the request path
            break
        time.sleep(0.1)
    by_tool: dict = {}
    for row in mine:  # newest first
        by_tool.setdefault(row["tool"], row)
    assert by_tool["echo"]["outcome"] == "ok" and by_tool["echo"]["token_id"] == tokens[0].id
    assert by_tool["echo"]["arguments"]["message"] == "audited"
    assert "sk-not-in-the-log" not in json.dumps(mine, default=str)
    assert by_tool["plain__no_such_tool"]["outcome"] == "unknown_tool"
    assert run(_admin(world, lambda b, a: a.list_tokens("bob")))[0].last_used_at is not None


def _cli(world, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        env=world["env"],
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_cli_prints_a_token_once_and_it_works_until_revoked(world):
    made = _cli(world, "agent", "token", "create", "carol", "--label", "cli")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    as_json = json.loads(
        _cli(world, "agent", "token", "create", "carol", "--json", "--expires-in", "1").stdout
    )
    assert as_json["token"].startswith("swb_") and as_json["id"].startswith("tok_")
    listed = json.loads(_cli(world, "agent", "token", "list", "carol", "--json").stdout)
    assert token not in json.dumps(listed) and as_json["token"] not in json.dumps(listed)
    world["gateway"].settle()
    assert _post(world, "carol", token).status_code == 200
    made_id = next(t["id"] for t in listed if t["label"] == "cli")
    assert _cli(world, "agent", "token", "revoke", "carol", made_id).returncode == 0
    world["gateway"].settle()
    assert _post(world, "carol", token).status_code == 401
    assert _post(world, "carol", as_json["token"]).status_code == 200


# --- the MCP Inspector's CLI ----------------------------------------------------------------------


def _inspector(world, agent: str, *args: str) -> subprocess.CompletedProcess:
    node, modules = os.environ.get("SWITCHBOARD_NODE"), os.environ.get("SWITCHBOARD_NODE_MODULES")
    launcher = (
        Path(modules or "")
        / "@modelcontextprotocol"
        / "inspector"
        / "clients"
        / "launcher"
        / "build"
        / "index.js"
    )
    if not node or not launcher.exists():
        pytest.skip("the MCP Inspector is installed by ./dev test (SWITCHBOARD_NODE_MODULES)")
    env = {**world["env"], "HOME": str(world["home"])}  # its catalog file goes there
    return subprocess.run(
        [
            node,
            str(launcher),
            "--cli",
            world["gateway"].url(agent),
            "--transport",
            "http",
            "--header",
            f"Authorization: Bearer {world['tokens'][agent]}",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )


def test_the_mcp_inspector_cli_lists_and_calls_through_the_gateway(world):
    listed = _inspector(world, "alice", "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert {t["name"] for t in json.loads(listed.stdout)["tools"]} >= {"render__whoami", "plain__echo"}
    called = _inspector(world, "bob", "--method", "tools/call", "--tool-name", "render__whoami")
    assert called.returncode == 0, called.stderr[-2000:]
    assert json.loads(called.stdout)["structuredContent"]["subject"] == "bob"


# --- the conformance suite's server scenarios -----------------------------------------------------

# The scenarios that apply to a gateway: the others call fixture tools by their own names
# (`test_simple_text`, ...), which a gateway serves only as `<connector>__<tool>`.
CONFORMANCE_SCENARIOS = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")


class _TokenForwarder:
    """The conformance runner has no way to send a header: this loopback forwarder adds the agent's
    token to every request, as a configured MCP client would, and passes everything else through."""

    def __init__(self, target: str, token: str) -> None:
        import socket
        import threading

        import uvicorn

        self.target, self.token = target, token
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="off", interface="asgi3")
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    async def app(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        skip = {b"content-length", b"connection", b"transfer-encoding", b"authorization"}
        headers = [(k, v) for k, v in scope["headers"] if k not in skip]
        headers.append((b"authorization", f"Bearer {self.token}".encode()))
        async with httpx2.AsyncClient(trust_env=False, timeout=30) as client:
            request = client.build_request(scope["method"], self.target, headers=headers, content=body)
            response = await client.send(request)
        kept = [(k.encode(), v.encode()) for k, v in response.headers.items() if k.encode() not in skip]
        await send({"type": "http.response.start", "status": response.status_code, "headers": kept})
        await send({"type": "http.response.body", "body": response.content})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.mark.conformance
def test_the_conformance_server_scenarios_that_apply_pass(world):
    node, modules = os.environ.get("SWITCHBOARD_NODE"), os.environ.get("SWITCHBOARD_NODE_MODULES")
    runner = Path(modules or "") / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    if not node or not runner.exists():
        pytest.skip("the conformance suite is installed by ./dev test (SWITCHBOARD_NODE_MODULES)")
    forwarder = _TokenForwarder(world["gateway"].url("alice"), world["tokens"]["alice"])
    try:
        for scenario in CONFORMANCE_SCENARIOS:
            done = subprocess.run(
                [node, str(runner), "server", "--url", forwarder.url, "--scenario", scenario],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{scenario}: {(done.stdout + done.stderr)[-1500:]}"
    finally:
        forwarder.stop()


def test_mcp_remote_bridges_a_stdio_client_to_the_gateway(world):
    """`mcp-remote` (npm) turns the gateway into a stdio server for clients that only speak stdio;
    the official SDK client talks to it over stdio."""
    from mcp import StdioServerParameters, stdio_client

    node, modules = os.environ.get("SWITCHBOARD_NODE"), os.environ.get("SWITCHBOARD_NODE_MODULES")
    proxy = Path(modules or "") / "mcp-remote" / "dist" / "proxy.js"
    if not node or not proxy.exists():
        pytest.skip("mcp-remote is installed by ./dev test (SWITCHBOARD_NODE_MODULES)")
    home = world["home"] / "mcp-remote-home"  # it keeps OAuth state under ~/.mcp-auth
    home.mkdir(exist_ok=True)
    params = StdioServerParameters(
        command=node,
        args=[
            str(proxy),
            world["gateway"].url("bob"),
            "--header",
            f"Authorization: Bearer {world['tokens']['bob']}",
            "--transport",
            "http-only",
            "--allow-http",
        ],
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )

    async def go():
        async with Client(stdio_client(params), mode="legacy") as client:
            assert "render__whoami" in await names(client)
            result = await client.call_tool("render__whoami", {})
            return result.structured_content["subject"]

    assert run(go()) == "bob"
