"""McpClient against real MCP servers on 127.0.0.1: the official SDK server in its four response
modes and both eras, the paginated server, bearer / API-key servers, the npm reference server
(server-everything) and FastMCP. Fault injection lives in test_mcp_client_faults.py."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from core.errors import AuthRequired, McpError, TransportError
from core.mcp import EraCache, McpClient
from core.mcp.auth import StaticHeader
from core.net import ALLOW_HOSTS_ENV, aclose_shared_clients
from sample_servers.launch import RunningServer


@pytest.fixture(autouse=True)
async def _loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The fixture servers listen on 127.0.0.1, which the network policy refuses unless allowed."""
    monkeypatch.setenv(ALLOW_HOSTS_ENV, "127.0.0.1")
    yield
    await aclose_shared_clients()


def rpc_counts(server: RunningServer) -> dict[str, int]:
    return dict(server.counters()["rpc_methods"])


def http_verbs(server: RunningServer) -> list[str]:
    return [r["method"] for r in server.counters()["requests"]]


def text_of(result: Any) -> str:
    return "".join(block.get("text", "") for block in result.content if block.get("type") == "text")


# --- the official SDK server --------------------------------------------------------------------


async def test_legacy_era_in_every_response_mode(response_mode_server: RunningServer) -> None:
    server = response_mode_server
    async with McpClient(server.url, era="legacy") as client:
        info = client.info
        assert info is not None and info.era == "legacy" and info.protocol_version == "2025-11-25"
        assert info.server_info["name"] == "sample-plain"
        tools = await client.list_tools()
        assert [t["name"] for t in tools] == server.tools
        assert all("inputSchema" in t for t in tools)  # full wire definitions
        echo = await client.call_tool("echo", {"message": "héllo"})
        assert text_of(echo) == "héllo" and echo.is_error is False
        added = await client.call_tool("add", {"a": 2, "b": 3.5})
        assert added.structured_content == {"sum": 5.5}
        failed = await client.call_tool("always_fails", {"reason": "nope"})
        assert failed.is_error is True and text_of(failed) == "nope"
        image = await client.call_tool("tiny_image", {})
        assert image.content[0]["type"] == "image" and image.content[0]["mimeType"] == "image/png"
    counts = rpc_counts(server)
    assert counts["initialize"] == 1 and counts["tools/list"] == 1 and counts["tools/call"] == 4
    assert "server/discover" not in counts
    stateless = server.options.get("stateless", False)
    assert ("DELETE" in http_verbs(server)) is not stateless  # DELETE only when there is a session


async def test_auto_era_picks_modern_on_the_dual_era_sdk_server(response_mode_server: RunningServer) -> None:
    server = response_mode_server
    async with McpClient(server.url) as client:
        assert client.info.era == "modern" and client.info.protocol_version == "2026-07-28"
        assert client.info.server_info.get("name") == "sample-plain"
        assert [t["name"] for t in await client.list_tools()] == server.tools
        assert (await client.call_tool("add", {"a": 1, "b": 1})).structured_content == {"sum": 2}
        assert text_of(await client.call_tool("greet", {"name": "Ada"})) == "Hello, Ada!"
    counts = rpc_counts(server)
    assert counts.get("server/discover") == 1 and "initialize" not in counts
    assert set(http_verbs(server)) == {"POST"}  # stateless era: no GET, no DELETE


async def test_modern_server(modern_server: RunningServer) -> None:
    async with McpClient(modern_server.url, era="modern") as client:
        tools = await client.list_tools()
        assert "configure" in [t["name"] for t in tools]
        result = await client.call_tool(
            "configure", {"mode": "fast", "level": 3, "target": {"host": "h", "port": 80}}
        )
        assert result.structured_content["target"] == {"host": "h", "port": 80, "options": None}
        with pytest.raises(McpError):
            await client.request("no/such/method")
        assert len(await client.list_tools()) == len(tools)  # still fine after an error


async def test_paginated_server_returns_all_tools(paginated_server: RunningServer) -> None:
    for era in ("legacy", "modern"):
        paginated_server.reset()
        async with McpClient(paginated_server.url, era=era) as client:
            tools = await client.list_tools()
        assert len(tools) == 25, era
        assert [t["name"] for t in tools] == paginated_server.tools
        assert len({t["name"] for t in tools}) == 25
        assert rpc_counts(paginated_server)["tools/list"] == 5, era


async def test_concurrent_calls_on_one_client(plain_server: RunningServer) -> None:
    async with McpClient(plain_server.url, era="legacy") as client:
        results = await asyncio.gather(*(client.call_tool("echo", {"message": f"m{i}"}) for i in range(32)))
    assert [text_of(r) for r in results] == [f"m{i}" for i in range(32)]
    assert rpc_counts(plain_server)["initialize"] == 1


async def test_concurrent_first_callers_share_one_initialize(plain_server: RunningServer) -> None:
    """Ten callers on a client nobody connected yet: one initialize, every caller served."""
    client = McpClient(plain_server.url, era="legacy")
    try:
        results = await asyncio.gather(*(client.list_tools() for _ in range(10)))
    finally:
        await client.close()
    assert all([t["name"] for t in r] == plain_server.tools for r in results)
    assert rpc_counts(plain_server)["initialize"] == 1


async def test_close_is_idempotent_and_client_refuses_afterwards(plain_server: RunningServer) -> None:
    client = McpClient(plain_server.url, era="legacy")
    await client.connect()
    await client.close()
    await client.close()
    assert http_verbs(plain_server).count("DELETE") == 1
    with pytest.raises(TransportError):
        await client.connect()


async def test_many_clients_share_the_pool(plain_server: RunningServer) -> None:
    clients = [McpClient(plain_server.url, era="legacy") for _ in range(8)]
    try:
        infos = await asyncio.gather(*(c.connect() for c in clients))
        assert all(i.era == "legacy" for i in infos)
        results = await asyncio.gather(*(c.call_tool("echo", {"message": "x"}) for c in clients))
        assert all(text_of(r) == "x" for r in results)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    assert rpc_counts(plain_server)["initialize"] == 8
    assert http_verbs(plain_server).count("DELETE") == 8


async def test_session_loss_on_a_real_server(plain_server: RunningServer) -> None:
    async with McpClient(plain_server.url, era="legacy") as client:
        plain_server.fail_next("/mcp", status=404, count=1)
        assert text_of(await client.call_tool("echo", {"message": "again"})) == "again"
    counts = rpc_counts(plain_server)
    assert counts["initialize"] == 2 and counts["notifications/initialized"] == 2


async def test_server_error_status_is_typed(plain_server: RunningServer) -> None:
    from core.errors import HttpStatusError

    async with McpClient(plain_server.url, era="legacy") as client:
        plain_server.fail_next("/mcp", status=503, count=1)
        with pytest.raises(HttpStatusError) as info:
            await client.call_tool("echo", {"message": "x"})
        assert info.value.status == 503
        assert text_of(await client.call_tool("echo", {"message": "y"})) == "y"


async def test_per_call_timeout_on_a_slow_tool(plain_server: RunningServer) -> None:
    from core.errors import RequestTimeout

    async with McpClient(plain_server.url, era="legacy") as client:
        with pytest.raises(RequestTimeout):
            await client.call_tool("sleep", {"seconds": 5}, timeout=0.3)
        assert text_of(await client.call_tool("sleep", {"seconds": 0})) == "slept 0.0s"


# --- credentials ----------------------------------------------------------------------------------


async def test_bearer_server(bearer_server: RunningServer) -> None:
    key = bearer_server.keys["alice"]
    async with McpClient(bearer_server.url, auth=StaticHeader.bearer(key), era="legacy") as client:
        who = await client.call_tool("whoami", {})
        assert who.structured_content["subject"] == "alice"
        assert who.structured_content["auth"] == "bearer"
    counters = bearer_server.counters()
    assert counters["requests_total"] == counters["requests_with_authorization"] > 0
    assert "DELETE" in http_verbs(bearer_server)


async def test_bearer_server_without_or_with_wrong_credential(bearer_server: RunningServer) -> None:
    with pytest.raises(AuthRequired) as info:
        await McpClient(bearer_server.url, era="legacy").connect()
    assert info.value.challenges and info.value.challenges[0].scheme == "bearer"
    with pytest.raises(AuthRequired) as info:
        await McpClient(bearer_server.url, auth=StaticHeader.bearer("wrong-key"), era="legacy").connect()
    assert "wrong-key" not in str(info.value)


async def test_two_agents_get_separate_sessions(bearer_server: RunningServer) -> None:
    """S-07: each agent initializes its own session with its own credential."""
    alice = McpClient(bearer_server.url, auth=StaticHeader.bearer(bearer_server.keys["alice"]), era="legacy")
    bob = McpClient(bearer_server.url, auth=StaticHeader.bearer(bearer_server.keys["bob"]), era="legacy")
    async with alice, bob:
        a, b = await asyncio.gather(alice.call_tool("whoami", {}), bob.call_tool("whoami", {}))
    assert (a.structured_content["subject"], b.structured_content["subject"]) == ("alice", "bob")
    assert rpc_counts(bearer_server)["initialize"] == 2


async def test_api_key_server(api_key_server: RunningServer) -> None:
    header = api_key_server.header
    assert header is not None
    auth = StaticHeader.api_key(header, api_key_server.keys["bob"])
    async with McpClient(api_key_server.url, auth=auth) as client:
        who = await client.call_tool("whoami", {})
    assert who.structured_content["subject"] == "bob"


# --- the npm reference server (legacy only) -------------------------------------------------------


async def test_server_everything(everything_server: RunningServer) -> None:
    eras = EraCache()  # shared by the application's clients
    async with McpClient(everything_server.url, era_cache=eras) as client:
        assert client.info.era == "legacy"
        tools = await client.list_tools()
        names = [t["name"] for t in tools]
        assert "echo" in names
        result = await client.call_tool("echo", {"message": "hi there"})
        assert "hi there" in text_of(result)
        resources = await client.list_resources()
        assert len(resources) > 0
        prompts = await client.list_prompts()
        assert len(prompts) > 0
    # the era verdict is cached per origin: a second connection does not probe again, it goes
    # straight to initialize + notifications/initialized (then DELETE on close)
    everything_server.reset()
    async with McpClient(everything_server.url, era_cache=eras) as client:
        assert client.info.era == "legacy"
    requests = everything_server.counters()["requests"]
    assert [(r["method"], r["status"]) for r in requests] == [("POST", 200), ("POST", 202), ("DELETE", 200)]


# --- FastMCP ----------------------------------------------------------------------------------

FASTMCP_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    import uvicorn
    from fastmcp import FastMCP

    mcp = FastMCP("fast-sample")

    @mcp.tool
    def echo(message: str) -> str:
        "Echo the message."
        return message

    @mcp.tool
    def add(a: float, b: float) -> float:
        "Add two numbers."
        return a + b

    stateless = sys.argv[1] == "stateless"
    app = mcp.http_app(path="/mcp", stateless_http=stateless, json_response=stateless)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))

    async def main():
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        print(server.servers[0].sockets[0].getsockname()[1], flush=True)
        await task

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module", params=["stateful", "stateless"])
def fastmcp_url(request: pytest.FixtureRequest) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", FASTMCP_SERVER, request.param],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line.isdigit():
            pytest.fail("the FastMCP server did not start")
        yield f"http://127.0.0.1:{line}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def test_fastmcp_server(fastmcp_url: str) -> None:
    for era in ("auto", "legacy"):
        async with McpClient(fastmcp_url, era=era) as client:
            assert client.info.server_info.get("name") == "fast-sample"
            names = [t["name"] for t in await client.list_tools()]
            assert names == ["echo", "add"]
            assert text_of(await client.call_tool("echo", {"message": "fast"})) == "fast"
            result = await client.call_tool("add", {"a": 1, "b": 2})
            assert result.structured_content == {"result": 3.0}
