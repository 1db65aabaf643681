"""The standalone GET stream of a legacy session (T-03, T-19, T-26), against a real server on
127.0.0.1 that behaves like the official TypeScript server: it sends its own requests (here an
elicitation, during a tool call) only on the GET stream, and drops them when that stream is not open.

* T-26: a client that offers elicitation, sampling or roots has the server's answer to its GET in hand
  before it sends another request, so the elicitation is answered even when the server answers the GET
  late.
* T-03: a 405 means the server offers no stream: the client carries on at once and never asks again
  for that session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from core.mcp import McpClient
from core.mcp.streams import DEFAULT_RETRY_MS
from core.net import NetworkPolicy, aclose_shared_clients, shared_http_client
from tests.test_attack_kit import RawHttpServer, Reply, Request

LOOPBACK = NetworkPolicy.allowing("127.0.0.1")
ELICITATION = {
    "jsonrpc": "2.0",
    "id": "elicit-1",
    "method": "elicitation/create",
    "params": {"message": "name?"},
}


class StreamingServer:
    """A legacy MCP server whose requests to the client travel only on the standalone GET stream.
    `log` is what arrived, in order: "GET" and JSON-RPC methods ("answer" for our responses)."""

    def __init__(self, *, get_delay: float = 0.0, get_status: int = 200) -> None:
        self.get_delay = get_delay
        self.get_status = get_status
        self.log: list[str] = []
        self.stream: asyncio.Queue[dict[str, Any]] | None = None  # set once the GET stream is open
        self.answer: asyncio.Future[dict[str, Any]] | None = None
        self.hold_call: Callable[[], Awaitable[None]] | None = None  # runs before tools/call answers
        self.raw = RawHttpServer(
            {
                ("POST", "/mcp"): self._post,
                ("GET", "/mcp"): self._get,
                ("DELETE", "/mcp"): lambda r: Reply(200),
            }
        )

    @property
    def url(self) -> str:
        return self.raw.origin + "/mcp"

    async def _get(self, request: Request) -> Reply:
        self.log.append("GET")
        await asyncio.sleep(self.get_delay)
        if self.get_status != 200:
            return Reply(self.get_status)

        async def events() -> AsyncIterator[bytes]:
            queue = self.stream = asyncio.Queue()  # open from the moment the headers are out
            yield b": open\n\n"
            while True:
                yield f"event: message\ndata: {json.dumps(await queue.get())}\n\n".encode()

        return Reply(200, {"content-type": "text/event-stream"}, events())

    async def _post(self, request: Request) -> Reply:
        message = request.json()
        method = message.get("method")
        self.log.append(method or "answer")
        if method is None:
            if self.answer is not None and message.get("id") == ELICITATION["id"]:
                self.answer.set_result(message)
            return Reply(202)
        if "id" not in message:
            return Reply(202)
        if method == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "s"},
            }
            return self._result(message, result, {"mcp-session-id": "session-1"})
        if method == "tools/list":
            return self._result(message, {"tools": [{"name": "ask", "inputSchema": {"type": "object"}}]})
        if method == "tools/call":
            if self.hold_call is not None:
                await self.hold_call()
            return self._result(message, {"content": [{"type": "text", "text": await self._elicit()}]})
        return Reply.json({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}})

    async def _elicit(self) -> str:
        if self.stream is None:
            return "dropped: the GET stream was not open"  # what the TypeScript server does
        self.answer = asyncio.get_running_loop().create_future()
        await self.stream.put(ELICITATION)
        return json.dumps((await asyncio.wait_for(self.answer, 10))["result"])

    @staticmethod
    def _result(
        message: dict[str, Any], result: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Reply:
        return Reply.json({"jsonrpc": "2.0", "id": message["id"], "result": result}, headers=headers)


async def elicitation_handler(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    return {"action": "accept", "content": {"name": "Ada"}} if method == "elicitation/create" else None


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[StreamingServer]]]:
    started: list[StreamingServer] = []

    async def start(**options: Any) -> StreamingServer:
        server = StreamingServer(**options)
        await server.raw.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.raw.stop()
    await aclose_shared_clients()


def client_for(server: StreamingServer) -> McpClient:
    return McpClient(
        server.url, http=shared_http_client(LOOPBACK), era="legacy", on_server_request=elicitation_handler
    )


@pytest.mark.parametrize("get_delay", [0.0, 0.5])
async def test_an_elicitation_on_the_get_stream_is_answered_even_when_the_get_is_answered_late(
    serve: Callable[..., Awaitable[StreamingServer]], get_delay: float
) -> None:
    """T-26. Before the fix the GET went out in the background: with a server that takes 0.5 s to
    answer it, `tools/call` arrived first and the elicitation was dropped (conformance scenario
    `elicitation-sep1034-client-defaults`, 3 failures in ~40 runs)."""
    server = await serve(get_delay=get_delay)
    async with client_for(server) as client:
        await client.list_tools()
        result = await client.call_tool("ask", {})
    assert result.content[0]["text"] == json.dumps({"action": "accept", "content": {"name": "Ada"}})
    assert server.log[:4] == ["initialize", "notifications/initialized", "GET", "tools/list"]


async def test_a_405_get_stream_is_not_waited_for_nor_asked_again(
    serve: Callable[..., Awaitable[StreamingServer]],
) -> None:
    """T-03. The server holds the tool call until either a second GET arrives (a client retrying after
    the 405) or one and a half times the client's retry delay has passed, so a retry would be seen."""
    server = await serve(get_status=405)
    second_get = asyncio.Event()

    async def hold() -> None:
        deadline = time.monotonic() + 1.5 * DEFAULT_RETRY_MS / 1000
        while server.log.count("GET") < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if server.log.count("GET") >= 2:
            second_get.set()

    server.hold_call = hold
    async with client_for(server) as client:
        await client.list_tools()
        result = await client.call_tool("ask", {})
    assert not second_get.is_set() and server.log.count("GET") == 1, server.log
    assert server.log[:4] == ["initialize", "notifications/initialized", "GET", "tools/list"]
    assert result.content[0]["text"].startswith("dropped")  # no stream, nothing to send it on
