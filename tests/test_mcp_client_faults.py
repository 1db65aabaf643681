"""McpClient against a scriptable in-process fake (httpx2.MockTransport): protocol details of both
eras and fault injection (T-01…T-25, S-07, S-08). The real-server tests are in test_mcp_client.py."""

from __future__ import annotations

import asyncio
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from core.errors import (
    AuthRequired,
    HttpStatusError,
    InsufficientScope,
    ListingLimitExceeded,
    McpError,
    PaginationError,
    ProtocolError,
    RequestTimeout,
    ResponseTooLarge,
    SessionExpired,
    SwitchboardError,
    TransportError,
    UnsupportedProtocolVersion,
)
from core.mcp import ClientLimits, EraCache, McpClient, encode_header_value
from core.mcp.auth import AuthChallenge, StaticHeader

URL = "http://mcp.test/mcp"
MODERN = "2026-07-28"
Handler = Callable[["Call"], Awaitable[httpx2.Response | None]]


# --- the fake server ------------------------------------------------------------------------------


@dataclass
class Call:
    """One HTTP request the fake received."""

    verb: str
    headers: dict[str, str]
    body: Any  # decoded JSON (None for GET/DELETE)
    request: httpx2.Request = field(repr=False)

    @property
    def method(self) -> str | None:
        return self.body.get("method") if isinstance(self.body, dict) else None

    @property
    def id(self) -> Any:
        return self.body.get("id") if isinstance(self.body, dict) else None

    @property
    def params(self) -> dict[str, Any]:
        return (self.body or {}).get("params") or {}


def json_reply(request_id: Any, result: dict[str, Any], status: int = 200, **headers: str) -> httpx2.Response:
    return httpx2.Response(
        status,
        json={"jsonrpc": "2.0", "id": request_id, "result": result},
        headers={"content-type": "application/json", **headers},
    )


def error_reply(
    request_id: Any, code: int, message: str, status: int = 200, data: Any = None
) -> httpx2.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return httpx2.Response(status, json={"jsonrpc": "2.0", "id": request_id, "error": error})


def sse_reply(*chunks: bytes | str, status: int = 200, delay: float = 0.0, **headers: str) -> httpx2.Response:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            if delay:
                await asyncio.sleep(delay)
            yield chunk.encode() if isinstance(chunk, str) else chunk

    return httpx2.Response(status, content=body(), headers={"content-type": "text/event-stream", **headers})


def sse_message(payload: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: message\ndata: {json.dumps(payload)}\n\n"


def result_msg(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {"name": "add", "inputSchema": {"type": "object"}},
]


class FakeServer:
    """A minimal MCP server: `era` legacy (sessions) or modern (stateless), `mode` json or sse.

    `on[method]` overrides the answer to a JSON-RPC method (return None to fall through); `on_get` /
    `on_delete` answer GET and DELETE."""

    def __init__(
        self,
        *,
        era: str = "legacy",
        mode: str = "json",
        version: str = "2025-11-25",
        session_prefix: str = "session-",
    ) -> None:
        self.era = era
        self.mode = mode
        self.version = version
        self.session_prefix = session_prefix
        self.sessions: set[str] = set()
        self.calls: list[Call] = []
        self.on: dict[str, Handler] = {}
        self.on_get: Handler | None = None
        self.on_delete: Handler | None = None
        self.tools: list[dict[str, Any]] = list(TOOLS)
        self.era_cache = EraCache()  # what an application shares between its clients
        self._counter = 0

    def client(self, **kwargs: Any) -> McpClient:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        kwargs.setdefault("era_cache", self.era_cache)
        return McpClient(URL, http=http, **kwargs)

    def methods(self) -> list[str | None]:
        return [c.method for c in self.calls if c.verb == "POST"]

    def verbs(self) -> list[str]:
        return [c.verb for c in self.calls]

    def count(self, method: str) -> int:
        return self.methods().count(method)

    def drop_sessions(self) -> None:
        self.sessions.clear()

    def reply(self, call: Call, result: dict[str, Any], **headers: str) -> httpx2.Response:
        if self.mode == "sse":
            return sse_reply(sse_message(result_msg(call.id, result)), **headers)
        return json_reply(call.id, result, **headers)

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        call = Call(request.method, {k.lower(): v for k, v in request.headers.items()}, body, request)
        self.calls.append(call)
        if request.method == "GET":
            if self.on_get is not None and (response := await self.on_get(call)) is not None:
                return response
            return httpx2.Response(405)
        if request.method == "DELETE":
            if self.on_delete is not None and (response := await self.on_delete(call)) is not None:
                return response
            self.sessions.discard(call.headers.get("mcp-session-id", ""))
            return httpx2.Response(200)
        if (handler := self.on.get(call.method or "")) is not None:
            response = await handler(call)
            if response is not None:
                return response
        if "id" not in body:
            return httpx2.Response(202)
        if self.era == "modern":
            return self._modern(call)
        return self._legacy(call)

    def _legacy(self, call: Call) -> httpx2.Response:
        if call.method == "server/discover":
            return httpx2.Response(
                400, text="Bad Request: Missing session ID", headers={"content-type": "text/plain"}
            )
        if call.method == "initialize":
            self._counter += 1
            session = f"{self.session_prefix}{self._counter}"
            self.sessions.add(session)
            return self.reply(
                call,
                {
                    "protocolVersion": self.version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "fake", "version": "1"},
                    "instructions": "hi",
                },
                **{"mcp-session-id": session},
            )
        session = call.headers.get("mcp-session-id")
        if session is None:
            return error_reply(None, -32600, "Bad Request: Mcp-Session-Id required", status=400)
        if session not in self.sessions:
            return error_reply(None, -32600, "Session not found", status=404)
        return self._dispatch(call)

    def _modern(self, call: Call) -> httpx2.Response:
        if call.method == "initialize":
            return error_reply(
                call.id,
                -32022,
                "Unsupported protocol version",
                status=400,
                data={"supported": [MODERN], "requested": call.params.get("protocolVersion")},
            )
        if call.method == "server/discover":
            return self.reply(
                call,
                {
                    "supportedVersions": [MODERN],
                    "capabilities": {"tools": {}},
                    "resultType": "complete",
                    "cacheScope": "public",
                    "ttlMs": 0,
                    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern-fake"}},
                },
            )
        return self._dispatch(call)

    def _dispatch(self, call: Call) -> httpx2.Response:
        if call.method == "tools/list":
            return self.reply(call, {"tools": self.tools})
        if call.method == "tools/call":
            name = call.params.get("name")
            text = json.dumps(call.params.get("arguments"))
            return self.reply(
                call, {"content": [{"type": "text", "text": f"{name}:{text}"}], "isError": False}
            )
        if call.method == "resources/read":
            return self.reply(call, {"contents": [{"uri": call.params.get("uri"), "text": "x"}]})
        if call.method in ("resources/list", "prompts/list"):
            key = call.method.split("/")[0]
            return self.reply(call, {key: [{"name": f"{key}-1"}]})
        return error_reply(call.id, -32601, "Method not found")


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Wait for background work (no timing assertion: it only bounds the wait)."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# --- legacy lifecycle (T-02, T-06, T-08, T-12, T-14) ---------------------------------------------


async def test_legacy_lifecycle_headers() -> None:
    fake = FakeServer()
    async with fake.client(era="legacy") as client:
        info = client.info
        assert info is not None and info.era == "legacy" and info.protocol_version == "2025-11-25"
        assert info.server_info == {"name": "fake", "version": "1"} and info.instructions == "hi"
        await client.list_tools()
    assert fake.verbs() == ["POST", "POST", "POST", "DELETE"]
    assert fake.methods() == ["initialize", "notifications/initialized", "tools/list"]
    init, initialized, listing, delete = fake.calls
    assert "mcp-session-id" not in init.headers and "mcp-protocol-version" not in init.headers
    assert init.params["protocolVersion"] == "2025-11-25"
    assert init.params["clientInfo"]["name"] == "switchboard"
    for call in (init, initialized, listing):
        accept = call.headers["accept"]
        assert "application/json" in accept and "text/event-stream" in accept  # T-02
        assert call.headers["content-type"] == "application/json"
        assert isinstance(call.body, dict)  # one message per POST, never a batch (T-01)
    for call in (initialized, listing, delete):
        assert call.headers["mcp-session-id"] == "session-1"  # T-12
        assert call.headers["mcp-protocol-version"] == "2025-11-25"  # T-08


async def test_older_negotiated_version_is_used_in_headers() -> None:
    fake = FakeServer(version="2025-03-26")
    async with fake.client(era="legacy") as client:
        await client.list_tools()
        assert client.info.protocol_version == "2025-03-26"
    assert fake.calls[-2].headers["mcp-protocol-version"] == "2025-03-26"


async def test_unsupported_version_disconnects() -> None:
    """T-07: an unknown version is refused, the session is DELETEd and nothing else is sent."""
    fake = FakeServer(version="1999-01-01")
    client = fake.client(era="legacy")
    with pytest.raises(UnsupportedProtocolVersion):
        await client.connect()
    await client.close()
    assert fake.verbs() == ["POST", "DELETE"]
    assert fake.calls[1].headers["mcp-session-id"] == "session-1"


async def test_delete_405_is_tolerated() -> None:
    fake = FakeServer()

    async def refuse(call: Call) -> httpx2.Response:
        return httpx2.Response(405)

    fake.on_delete = refuse
    async with fake.client(era="legacy"):
        pass
    assert fake.verbs()[-1] == "DELETE"


@pytest.mark.parametrize("session_id", ["abc\x01def", "has space", "tab\there", "caf\u00e9", "x" * 2000, ""])
async def test_invalid_session_id_is_refused(session_id: str, caplog: pytest.LogCaptureFixture) -> None:
    """S-07/T-12: only visible ASCII; refused without echoing the value."""
    fake = FakeServer()

    async def init(call: Call) -> httpx2.Response:
        return httpx2.Response(
            200,
            headers=[(b"content-type", b"application/json"), (b"mcp-session-id", session_id.encode())],
            json=result_msg(
                call.id, {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "x"}}
            ),
        )

    fake.on["initialize"] = init
    client = fake.client(era="legacy")
    with pytest.raises(ProtocolError) as info:
        await client.connect()
    await client.close()
    if session_id:
        assert session_id not in str(info.value)
        assert session_id not in caplog.text
    assert fake.count("tools/list") == 0


# --- session loss (T-13, C-10) --------------------------------------------------------------------


async def test_session_loss_reinitializes_once_for_concurrent_callers() -> None:
    fake = FakeServer()
    client = fake.client(era="legacy")
    await client.connect()
    fake.drop_sessions()
    results = await asyncio.gather(*(client.call_tool("echo", {"text": str(i)}) for i in range(16)))
    assert [r.content[0]["text"] for r in results] == [f'echo:{{"text": "{i}"}}' for i in range(16)]
    assert fake.count("initialize") == 2
    second_init = [c for c in fake.calls if c.method == "initialize"][1]
    assert "mcp-session-id" not in second_init.headers
    # after the new initialize: notifications/initialized, then every retry with the new session
    index = fake.calls.index(second_init)
    assert fake.calls[index + 1].method == "notifications/initialized"
    assert fake.calls[index + 1].headers["mcp-session-id"] == "session-2"
    retries = [c for c in fake.calls[index + 2 :] if c.method == "tools/call"]
    assert len(retries) == 16 and all(c.headers["mcp-session-id"] == "session-2" for c in retries)
    await client.close()


async def test_session_lost_twice_raises_session_expired() -> None:
    fake = FakeServer()
    client = fake.client(era="legacy")
    await client.connect()

    async def always_lost(call: Call) -> httpx2.Response:
        return error_reply(None, -32600, "Session not found", status=404)

    fake.on["tools/call"] = always_lost
    with pytest.raises(SessionExpired):
        await client.call_tool("echo", {})
    assert fake.count("tools/call") == 2  # the original and one retry after re-initializing
    await client.close()


async def test_404_method_not_found_is_not_session_loss() -> None:
    fake = FakeServer()
    client = fake.client(era="legacy")
    await client.connect()

    async def not_found(call: Call) -> httpx2.Response:
        return error_reply(call.id, -32601, "Method not found", status=404)

    fake.on["resources/list"] = not_found
    with pytest.raises(McpError) as info:
        await client.list_resources()
    assert info.value.code == -32601
    assert fake.count("initialize") == 1
    await client.close()


async def test_pagination_restarts_when_the_session_is_recreated() -> None:
    """T-13/T-20: cursors of a lost session are discarded; listing starts over."""
    fake = FakeServer()
    pages = {None: ([TOOLS[0]], "c1"), "c1": ([TOOLS[1]], None)}
    dropped = False

    async def paged(call: Call) -> httpx2.Response | None:
        nonlocal dropped
        cursor = call.params.get("cursor")
        if cursor == "c1" and not dropped:
            dropped = True
            fake.drop_sessions()
            return None  # falls through: the fake answers 404 for the dropped session
        tools, next_cursor = pages[cursor]
        result: dict[str, Any] = {"tools": tools}
        if next_cursor:
            result["nextCursor"] = next_cursor
        return fake.reply(call, result)

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = paged
        tools = await client.list_tools()
    assert [t["name"] for t in tools] == ["echo", "add"]
    cursors = [c.params.get("cursor") for c in fake.calls if c.method == "tools/list"]
    assert cursors == [None, "c1", None, "c1"]


# --- responses: JSON, SSE, content types (T-04, T-05, T-16, T-22, T-23, T-25) ---------------------


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8"])
async def test_json_media_type_variants(content_type: str) -> None:
    fake = FakeServer()

    async def answer(call: Call) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=json.dumps(result_msg(call.id, {"tools": []})),
            headers={"content-type": content_type},
        )

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = answer
        assert await client.list_tools() == []


@pytest.mark.parametrize("content_type", ["text/event-stream", "TEXT/Event-Stream;charset=utf-8"])
async def test_sse_media_type_variants(content_type: str) -> None:
    fake = FakeServer(mode="sse")

    async def answer(call: Call) -> httpx2.Response:
        return sse_reply(sse_message(result_msg(call.id, {"tools": []})), **{"content-type": content_type})

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = answer
        assert await client.list_tools() == []


async def test_sse_mode_end_to_end() -> None:
    fake = FakeServer(mode="sse")
    async with fake.client(era="legacy") as client:
        result = await client.call_tool("echo", {"text": "hi"})
    assert result.content == [{"type": "text", "text": 'echo:{"text": "hi"}'}]
    assert result.is_error is False and result.structured_content is None


@pytest.mark.parametrize(
    ("content_type", "needle"),
    [
        ("text/html; charset=utf-8", "not an MCP endpoint"),
        (None, "application/json or text/event-stream"),
        ("text/plain", "application/json or text/event-stream"),
    ],
)
async def test_wrong_content_type_fails_only_that_call(content_type: str | None, needle: str) -> None:
    fake = FakeServer()

    async def html(call: Call) -> httpx2.Response:
        headers = {"content-type": content_type} if content_type else {}
        return httpx2.Response(200, content=b"<html>login</html>", headers=headers)

    async with fake.client(era="legacy") as client:
        fake.on["resources/list"] = html
        with pytest.raises(ProtocolError) as info:
            await client.list_resources()
        assert needle in str(info.value)
        assert len(await client.list_tools()) == 2  # the session keeps working


async def test_malformed_and_invalid_utf8_sse_messages_are_dropped_and_the_stream_continues() -> None:
    fake = FakeServer(mode="sse")

    async def messy(call: Call) -> httpx2.Response:
        return sse_reply(
            ": keep-alive\n\n",
            "data: {not json\n\n",
            b'data: {"jsonrpc":"2.0","id":' + str(call.id).encode() + b',"result":{"x":"\xff"}}\n\n',
            'data: [{"jsonrpc":"2.0"}]\n\n',
            "data: " + "[" * 100_000 + "\n\n",
            sse_message({"jsonrpc": "2.0", "id": 999_999, "result": {}}),  # unknown id: ignored (T-23)
            sse_message({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}),
            sse_message(result_msg(call.id, {"tools": [{"name": "ok"}]})),
        )

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = messy
        assert await client.list_tools() == [{"name": "ok"}]


async def test_sse_stream_ending_without_response_or_id_fails() -> None:
    fake = FakeServer(mode="sse")

    async def silent(call: Call) -> httpx2.Response:
        return sse_reply(": nothing\n\n")

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = silent
        with pytest.raises(TransportError, match="without answering"):
            await client.list_tools()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"jsonrpc":"2.0","id":1,"result":{"n":' + b"9" * 10_000 + b"}}",
        b'[{"jsonrpc":"2.0","id":1,"result":{}}]',
        b"\xff\xfe",
        b'{"jsonrpc":"1.0","id":1,"result":{}}',
        b'{"jsonrpc":"2.0","id":1,"result":[]}',
    ],
)
async def test_hostile_json_bodies_are_protocol_errors(body: bytes) -> None:
    fake = FakeServer()

    async def hostile(call: Call) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=body.replace(b'"id":1', f'"id":{call.id}'.encode()),
            headers={"content-type": "application/json"},
        )

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = hostile
        with pytest.raises(ProtocolError):
            await client.list_tools()


async def test_huge_float_is_harmless() -> None:
    fake = FakeServer()

    async def inf(call: Call) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=f'{{"jsonrpc":"2.0","id":{call.id},"result":{{"v":1e100000}}}}',
            headers={"content-type": "application/json"},
        )

    async with fake.client(era="legacy") as client:
        fake.on["ping"] = inf
        assert (await client.request("ping"))["v"] == float("inf")


async def test_jsonrpc_error_is_typed_and_session_survives() -> None:
    fake = FakeServer()

    async def invalid(call: Call) -> httpx2.Response:
        return error_reply(call.id, -32602, "Unknown tool: nope")

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = invalid
        with pytest.raises(McpError) as info:
            await client.call_tool("nope", {})
        assert info.value.code == -32602 and "Unknown tool" in str(info.value)
        del fake.on["tools/call"]
        assert (await client.call_tool("echo", {})).is_error is False


async def test_error_with_null_id_in_an_error_status() -> None:
    fake = FakeServer()

    async def bad(call: Call) -> httpx2.Response:
        return error_reply(None, -32600, "Invalid request: x", status=400)

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = bad
        with pytest.raises(McpError, match="Invalid request"):
            await client.list_tools()


async def test_202_for_a_request_is_an_error() -> None:
    fake = FakeServer()

    async def accepted(call: Call) -> httpx2.Response:
        return httpx2.Response(202)

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = accepted
        with pytest.raises(ProtocolError, match="202"):
            await client.list_tools()


async def test_5xx_is_typed_and_tools_call_is_not_retried() -> None:
    fake = FakeServer()

    async def boom(call: Call) -> httpx2.Response:
        return httpx2.Response(502, text="bad gateway")

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = boom
        with pytest.raises(HttpStatusError) as info:
            await client.call_tool("echo", {})
        assert info.value.status == 502
    assert fake.count("tools/call") == 1


@pytest.mark.parametrize(
    ("status", "headers", "needle"),
    [
        (406, {}, "Accept header"),
        (405, {}, "not a Streamable HTTP MCP endpoint"),
        (307, {"location": "https://elsewhere.test/mcp?key=secret"}, "redirects are not followed"),
    ],
)
async def test_status_hints(status: int, headers: dict[str, str], needle: str) -> None:
    fake = FakeServer()

    async def answer(call: Call) -> httpx2.Response:
        return httpx2.Response(status, headers=headers)

    async with fake.client(era="legacy") as client:
        fake.on["tools/list"] = answer
        with pytest.raises(HttpStatusError) as info:
            await client.list_tools()
    assert needle in str(info.value)
    assert "secret" not in str(info.value)
    assert fake.count("tools/list") == 1  # a redirect is never followed


async def test_400_session_required_hint_when_forcing_modern_against_legacy() -> None:
    fake = FakeServer()

    async def discover_as_legacy(call: Call) -> httpx2.Response:
        return error_reply(None, -32600, "Bad Request: Mcp-Session-Id required", status=400)

    fake.on["server/discover"] = discover_as_legacy
    client = fake.client(era="modern")
    with pytest.raises(McpError) as info:
        await client.connect()
    assert "initialize handshake" in str(info.value)
    await client.close()


# --- sizes and memory (S-08) ----------------------------------------------------------------------


async def test_oversized_json_by_content_length() -> None:
    fake = FakeServer()

    async def big(call: Call) -> httpx2.Response:
        return httpx2.Response(200, content=b" " * 5000, headers={"content-type": "application/json"})

    async with fake.client(era="legacy", limits=ClientLimits(max_response_bytes=4096)) as client:
        fake.on["tools/list"] = big
        with pytest.raises(ResponseTooLarge):
            await client.list_tools()


def _endless(chunk: bytes, count: int) -> Callable[[Call], Awaitable[httpx2.Response]]:
    async def answer(call: Call) -> httpx2.Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield chunk

        content_type = (
            "text/event-stream" if chunk.startswith((b"data", b":", b"x", b"d")) else "application/json"
        )
        return httpx2.Response(200, content=body(), headers={"content-type": content_type})

    return answer


@pytest.mark.parametrize(
    ("chunk", "limits"),
    [
        (b" " * 65536, ClientLimits()),  # 64 MiB chunked JSON with no Content-Length
        (b"x" * 65536, ClientLimits()),  # one SSE line that never ends
        (b"data: " + b"y" * 65530 + b"\n", ClientLimits()),  # data lines that never end the event
        (b"data: {}\n\n" * 6000, ClientLimits(max_response_bytes=1 << 20)),  # a flood of non-responses
        (b":" + b"c" * 65535, ClientLimits(max_line_bytes=1 << 20)),  # one endless comment
    ],
)
async def test_oversized_streams_fail_with_bounded_memory(chunk: bytes, limits: ClientLimits) -> None:
    fake = FakeServer()
    async with fake.client(era="legacy", limits=limits) as client:
        fake.on["tools/list"] = _endless(chunk, (64 << 20) // len(chunk) + 1)
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge):
                await client.list_tools()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 40 << 20  # 64 MiB were offered; what we held stays near the caps


# --- timeouts (T-21) ------------------------------------------------------------------------------


async def test_a_server_that_never_answers_times_out_and_legacy_cancels() -> None:
    fake = FakeServer()
    never = asyncio.Event()

    async def hang(call: Call) -> httpx2.Response:
        await never.wait()
        raise AssertionError("unreachable")

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = hang
        with pytest.raises(RequestTimeout):
            await client.call_tool("slow", {}, timeout=0.2)
        await wait_for(lambda: fake.count("notifications/cancelled") == 1, "notifications/cancelled")
        cancel = next(c for c in fake.calls if c.method == "notifications/cancelled")
        call = next(c for c in fake.calls if c.method == "tools/call")
        assert cancel.params["requestId"] == call.id
        assert cancel.headers["mcp-session-id"] == "session-1"
        # the client still works
        assert len(await client.list_tools()) == 2


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_caller_cancellation(era: str) -> None:
    """T-18: legacy sends notifications/cancelled for the request; modern just closes the stream."""
    fake = FakeServer(era=era)
    never = asyncio.Event()

    async def hang(call: Call) -> httpx2.Response:
        await never.wait()
        raise AssertionError("unreachable")

    async with fake.client(era=era) as client:
        fake.on["tools/call"] = hang
        task = asyncio.create_task(client.call_tool("slow", {}))
        await wait_for(lambda: fake.count("tools/call") == 1, "tools/call sent")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if era == "legacy":
            await wait_for(lambda: fake.count("notifications/cancelled") == 1, "notifications/cancelled")
            cancel = next(c for c in fake.calls if c.method == "notifications/cancelled")
            assert cancel.params["requestId"] == next(c.id for c in fake.calls if c.method == "tools/call")
        else:
            await asyncio.sleep(0.05)
            assert "notifications/cancelled" not in fake.methods()
        assert len(await client.list_tools()) == 2


async def test_a_stream_that_goes_silent_times_out() -> None:
    fake = FakeServer(mode="sse")
    never = asyncio.Event()

    async def trickle(call: Call) -> httpx2.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b": started\n\n"
            await never.wait()
            yield b""

        return httpx2.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = trickle
        with pytest.raises(RequestTimeout):
            await client.call_tool("x", {}, timeout=0.2)


async def test_initialize_timeout_sends_no_cancellation() -> None:
    fake = FakeServer()
    never = asyncio.Event()

    async def hang(call: Call) -> httpx2.Response:
        await never.wait()
        raise AssertionError("unreachable")

    fake.on["initialize"] = hang
    client = fake.client(era="legacy", timeout=0.2)
    with pytest.raises(RequestTimeout):
        await client.connect()
    await asyncio.sleep(0)
    assert "notifications/cancelled" not in fake.methods()
    await client.close()


# --- resumption (T-17) ----------------------------------------------------------------------------


async def test_resumption_by_get_with_last_event_id() -> None:
    fake = FakeServer(mode="sse")

    async def primed_then_closed(call: Call) -> httpx2.Response:
        return sse_reply("id: ev-1\nretry: 100\ndata: \n\n")

    async def resume(call: Call) -> httpx2.Response:
        call_id = next(c.id for c in fake.calls if c.method == "tools/call")
        return sse_reply("id: ev-2\ndata: \n\n", sse_message(result_msg(call_id, {"content": []}), "ev-3"))

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = primed_then_closed
        fake.on_get = resume
        result = await client.call_tool("slow", {})
    assert result.content == []
    get = next(c for c in fake.calls if c.verb == "GET")
    assert get.headers["last-event-id"] == "ev-1"
    assert get.headers["accept"] == "text/event-stream"
    assert get.headers["mcp-session-id"] == "session-1"
    assert get.headers["mcp-protocol-version"] == "2025-11-25"


async def test_resumption_gives_up_after_repeated_empty_streams() -> None:
    fake = FakeServer(mode="sse")

    async def primed(call: Call) -> httpx2.Response:
        return sse_reply("id: ev-1\nretry: 100\ndata: \n\n")

    async def empty(call: Call) -> httpx2.Response:
        return sse_reply(": nothing\n\n")

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = primed
        fake.on_get = empty
        with pytest.raises(TransportError, match="gave up resuming"):
            await client.call_tool("x", {})
    assert 1 <= fake.verbs().count("GET") <= 6


async def test_resumption_refused_by_server() -> None:
    fake = FakeServer(mode="sse")

    async def primed(call: Call) -> httpx2.Response:
        return sse_reply("id: ev-1\nretry: 100\ndata: \n\n")

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = primed
        with pytest.raises(TransportError, match="could not resume"):
            await client.call_tool("x", {})  # the fake answers GET with 405


async def test_dropped_connection_mid_stream_is_resumed() -> None:
    fake = FakeServer(mode="sse")

    async def drop(call: Call) -> httpx2.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"id: ev-9\nretry: 100\ndata: \n\n"
            raise httpx2.ReadError("connection reset")

        return httpx2.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    async def resume(call: Call) -> httpx2.Response:
        call_id = next(c.id for c in fake.calls if c.method == "tools/call")
        return sse_reply(sse_message(result_msg(call_id, {"content": [{"type": "text", "text": "ok"}]})))

    async with fake.client(era="legacy") as client:
        fake.on["tools/call"] = drop
        fake.on_get = resume
        assert (await client.call_tool("x", {})).content[0]["text"] == "ok"
    assert next(c for c in fake.calls if c.verb == "GET").headers["last-event-id"] == "ev-9"


# --- server-initiated requests (T-19) -------------------------------------------------------------


async def test_server_requests_on_a_stream_are_answered() -> None:
    fake = FakeServer(mode="sse")
    answered = asyncio.Event()

    async def with_requests(call: Call) -> httpx2.Response:
        async def body() -> AsyncIterator[bytes]:
            yield sse_message({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"}).encode()
            yield sse_message(
                {"jsonrpc": "2.0", "id": "srv-2", "method": "sampling/createMessage", "params": {}}
            ).encode()
            yield sse_message(
                {"jsonrpc": "2.0", "id": 7, "method": "elicitation/create", "params": {"message": "name?"}}
            ).encode()
            await answered.wait()
            yield sse_message(result_msg(call.id, {"content": []})).encode()

        return httpx2.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    async def record_answers(call: Call) -> httpx2.Response | None:
        return None

    async def on_server_request(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method == "elicitation/create":
            return {"action": "accept", "content": {"name": "Ada"}}
        return None

    original = fake.__call__

    async def spy(request: httpx2.Request) -> httpx2.Response:
        response = await original(request)
        body = json.loads(request.content) if request.content else {}
        answers = [c for c in fake.calls if c.body and "method" not in c.body]
        if isinstance(body, dict) and "method" not in body and "id" in body and len(answers) == 3:
            answered.set()
        return response

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(spy))
    async with McpClient(URL, http=http, era="legacy", on_server_request=on_server_request) as client:
        fake.on["tools/call"] = with_requests
        await client.call_tool("ask", {})
    answers = {c.body["id"]: c for c in fake.calls if c.body and "method" not in c.body}
    assert answers["srv-1"].body == {"jsonrpc": "2.0", "id": "srv-1", "result": {}}
    assert answers["srv-2"].body["error"]["code"] == -32601
    assert answers[7].body["result"] == {"action": "accept", "content": {"name": "Ada"}}
    for answer in answers.values():
        assert answer.headers["mcp-session-id"] == "session-1"
        assert answer.headers["mcp-protocol-version"] == "2025-11-25"
    # a handler makes us advertise the capabilities
    init = next(c for c in fake.calls if c.method == "initialize")
    assert {"elicitation", "sampling", "roots"} <= set(init.params["capabilities"])


async def test_no_handler_means_no_capabilities_and_no_get_stream() -> None:
    fake = FakeServer()
    async with fake.client(era="legacy") as client:
        await client.list_tools()
    assert next(c for c in fake.calls if c.method == "initialize").params["capabilities"] == {}
    assert "GET" not in fake.verbs()


async def test_standalone_get_stream_delivers_server_requests() -> None:
    fake = FakeServer()
    delivered = asyncio.Event()

    async def stream(call: Call) -> httpx2.Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"id: g1\ndata: \n\n"
            yield sse_message({"jsonrpc": "2.0", "id": 1, "method": "roots/list"}).encode()
            await delivered.wait()

        return httpx2.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    async def handler(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return {"roots": [{"uri": "file:///work"}]} if method == "roots/list" else None

    fake.on_get = stream
    async with fake.client(era="legacy", on_server_request=handler):
        await wait_for(lambda: any(c.body and c.body.get("result") for c in fake.calls), "roots answer")
        delivered.set()
    answer = next(c for c in fake.calls if c.body and "result" in c.body)
    assert answer.body == {"jsonrpc": "2.0", "id": 1, "result": {"roots": [{"uri": "file:///work"}]}}


# --- pagination (T-20) ----------------------------------------------------------------------------


def paged_answers(fake: FakeServer, pages: dict[str | None, tuple[list[str], str | None]]) -> Handler:
    async def answer(call: Call) -> httpx2.Response:
        cursor = call.params.get("cursor")
        if cursor not in pages:
            return error_reply(call.id, -32602, "Invalid cursor")
        names, next_cursor = pages[cursor]
        result: dict[str, Any] = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in names]}
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return fake.reply(call, result)

    return answer


async def test_pagination_with_opaque_and_empty_cursors() -> None:
    fake = FakeServer()
    fake.on["tools/list"] = paged_answers(
        fake, {None: (["a"], "a=="), "a==": (["b"], ""), "": (["c"], "b"), "b": (["d"], None)}
    )
    async with fake.client(era="legacy") as client:
        tools = await client.list_tools()
    assert [t["name"] for t in tools] == ["a", "b", "c", "d"]
    assert [c.params.get("cursor") for c in fake.calls if c.method == "tools/list"] == [None, "a==", "", "b"]


async def test_repeated_cursor_is_a_pagination_error() -> None:
    fake = FakeServer()
    fake.on["tools/list"] = paged_answers(fake, {None: (["a"], "x"), "x": (["b"], "y"), "y": (["c"], "x")})
    async with fake.client(era="legacy") as client:
        with pytest.raises(PaginationError, match="repeated"):
            await client.list_tools()


async def test_page_cap() -> None:
    fake = FakeServer()
    pages: dict[str | None, tuple[list[str], str | None]] = {None: (["t0"], "p1")}
    pages.update({f"p{i}": ([f"t{i}"], f"p{i + 1}") for i in range(1, 50)})
    fake.on["tools/list"] = paged_answers(fake, pages)
    async with fake.client(era="legacy", limits=ClientLimits(max_pages=10)) as client:
        with pytest.raises(PaginationError, match="more than 10 pages"):
            await client.list_tools()
    assert fake.count("tools/list") == 10


@pytest.mark.parametrize(
    ("limits", "setting", "limit"),
    [
        (ClientLimits(max_listing_items=7), "SWITCHBOARD_LISTING_MAX_ITEMS", 7),
        (ClientLimits(max_listing_bytes=500), "SWITCHBOARD_LISTING_MAX_BYTES", 500),
    ],
)
async def test_a_listing_is_capped_as_a_whole(limits: ClientLimits, setting: str, limit: int) -> None:
    fake = FakeServer()
    pages: dict[str | None, tuple[list[str], str | None]] = {None: (["t0", "u0"], "p1")}
    pages.update({f"p{i}": ([f"t{i}", f"u{i}"], f"p{i + 1}") for i in range(1, 50)})
    fake.on["tools/list"] = paged_answers(fake, pages)
    async with fake.client(era="legacy", limits=limits) as client:
        with pytest.raises(ListingLimitExceeded) as info:
            await client.list_tools()
    assert (info.value.setting, info.value.limit) == (setting, limit)
    assert setting in str(info.value)
    assert fake.count("tools/list") < 10


async def test_invalid_cursor_error_reaches_the_caller() -> None:
    fake = FakeServer()
    fake.on["tools/list"] = paged_answers(fake, {None: (["a"], "gone")})
    async with fake.client(era="legacy") as client:
        with pytest.raises(McpError) as info:
            await client.list_tools()
    assert info.value.code == -32602


# --- authorization (A-02, A-28, A-31) -------------------------------------------------------------


class RecordingProvider:
    """A CredentialProvider whose token can be rotated by a challenge."""

    def __init__(self, token: str = "t1", retry: bool = True) -> None:
        self.token = token
        self.retry = retry
        self.challenges: list[AuthChallenge] = []

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def handle_challenge(self, challenge: AuthChallenge) -> bool:
        self.challenges.append(challenge)
        if self.retry:
            self.token = "t2"
        return self.retry


def guarded(fake: FakeServer, valid: str = "Bearer t2") -> None:
    """Every request must carry `valid`, else 401 with a WWW-Authenticate challenge."""
    original = fake.__call__

    async def check(request: httpx2.Request) -> httpx2.Response:
        if request.headers.get("authorization") != valid:
            fake.calls.append(
                Call(
                    request.method,
                    {k.lower(): v for k, v in request.headers.items()},
                    json.loads(request.content) if request.content else None,
                    request,
                )
            )
            return httpx2.Response(
                401,
                headers=[
                    ("www-authenticate", 'DPoP algs="ES256"'),
                    (
                        "www-authenticate",
                        'Bearer error="invalid_token", resource_metadata="https://mcp.test/prm"',
                    ),
                ],
            )
        return await original(request)

    fake.__call__ = check  # type: ignore[method-assign]


async def test_401_challenge_refresh_and_retry_once() -> None:
    fake = FakeServer()
    guarded(fake)
    provider = RecordingProvider("t1")
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: fake.__call__(r)))
    async with McpClient(URL, http=http, auth=provider, era="legacy") as client:
        await client.list_tools()
    assert len(provider.challenges) == 1
    challenge = provider.challenges[0]
    assert challenge.status == 401 and challenge.method == "initialize" and challenge.url == URL
    bearer = challenge.bearer()
    assert bearer is not None and bearer.get("resource_metadata") == "https://mcp.test/prm"
    assert [c.scheme for c in challenge.challenges] == ["dpop", "bearer"]


async def test_401_without_retry_raises_auth_required() -> None:
    fake = FakeServer()
    guarded(fake)
    provider = RecordingProvider("t1", retry=False)
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: fake.__call__(r)))
    client = McpClient(URL, http=http, auth=provider, era="legacy")
    with pytest.raises(AuthRequired) as info:
        await client.connect()
    assert info.value.challenges and "t1" not in str(info.value)
    assert "OAuth" in str(info.value)
    assert len([c for c in fake.calls if c.verb == "POST"]) == 1  # no retry
    await client.close()


async def test_401_without_provider() -> None:
    fake = FakeServer()
    guarded(fake)
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: fake.__call__(r)))
    with pytest.raises(AuthRequired):
        await McpClient(URL, http=http, era="legacy").connect()


async def test_retry_happens_only_once() -> None:
    fake = FakeServer()
    guarded(fake, valid="Bearer never")
    provider = RecordingProvider("t1")
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(lambda r: fake.__call__(r)))
    with pytest.raises(AuthRequired):
        await McpClient(URL, http=http, auth=provider, era="legacy").connect()
    assert len(provider.challenges) == 1  # asked once; the retry failed too: give up, no loop
    assert len(fake.calls) == 2


async def test_403_insufficient_scope() -> None:
    fake = FakeServer()

    async def forbidden(call: Call) -> httpx2.Response:
        return httpx2.Response(
            403,
            headers={
                "www-authenticate": 'Bearer error="insufficient_scope", scope="files:read files:write", '
                'resource_metadata="https://mcp.test/prm"'
            },
        )

    provider = RecordingProvider("t1", retry=False)
    async with fake.client(era="legacy", auth=provider) as client:
        fake.on["tools/call"] = forbidden
        with pytest.raises(InsufficientScope) as info:
            await client.call_tool("write", {})
    assert info.value.scopes == ("files:read", "files:write")
    assert provider.challenges[0].status == 403 and provider.challenges[0].method == "tools/call"


async def test_auth_headers_on_every_request_kind() -> None:
    """A-28: POSTs, notifications, responses to server requests, the GET stream, resumption GETs
    and DELETE all carry the credential."""
    fake = FakeServer(mode="sse")
    provider = StaticHeader.bearer("sekret-token")

    async def stream(call: Call) -> httpx2.Response:
        async def body() -> AsyncIterator[bytes]:
            yield sse_message({"jsonrpc": "2.0", "id": "p", "method": "ping"}).encode()
            yield b"id: e1\nretry: 100\ndata: \n\n"

        return httpx2.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    async def resume(call: Call) -> httpx2.Response | None:
        if "last-event-id" not in call.headers:
            return None  # the standalone GET stream: 405
        call_id = next(c.id for c in fake.calls if c.method == "tools/call")
        return sse_reply(sse_message(result_msg(call_id, {"content": []})))

    async def handler(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return None

    fake.on_get = resume
    async with fake.client(era="legacy", auth=provider, on_server_request=handler) as client:
        fake.on["tools/call"] = stream
        await client.call_tool("x", {})
        await wait_for(
            lambda: any(c.body and c.body.get("id") == "p" and "result" in c.body for c in fake.calls),
            "ping answer",
        )
    kinds = {
        (c.verb, c.method or ("response" if c.body else None), "last-event-id" in c.headers)
        for c in fake.calls
    }
    assert ("GET", None, True) in kinds and ("GET", None, False) in kinds
    assert ("DELETE", None, False) in kinds and ("POST", "response", False) in kinds
    assert ("POST", "notifications/initialized", False) in kinds
    assert all(c.headers.get("authorization") == "Bearer sekret-token" for c in fake.calls)


# --- secrets stay out of messages and logs (S-07, S-12) -------------------------------------------


async def test_secrets_never_in_errors_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token, session = "TOKEN-CANARY-123", "SESSION-CANARY-456"
    fake = FakeServer(session_prefix=session)
    errors: list[BaseException] = []

    async def fail(call: Call) -> httpx2.Response:
        return httpx2.Response(500, text=f"{token} {session}")

    client = fake.client(era="legacy", auth=StaticHeader.bearer(token))
    async with client:
        fake.on["tools/call"] = fail
        try:
            await client.call_tool("x", {})
        except SwitchboardError as exc:
            errors.append(exc)
        fake.on["tools/list"] = fail
        try:
            await client.list_tools()
        except SwitchboardError as exc:
            errors.append(exc)
        text = repr(client) + str(client.info)
    assert len(errors) == 2
    haystack = text + caplog.text + "".join(f"{e!s}{e!r}" for e in errors)
    assert token not in haystack and session not in haystack


# --- modern era (T-09, T-10, T-11, T-22) ----------------------------------------------------------


async def test_modern_requests_carry_meta_and_headers() -> None:
    fake = FakeServer(era="modern")
    async with fake.client(era="modern", client_info={"name": "sb-test", "version": "9"}) as client:
        info = client.info
        assert info.era == "modern" and info.protocol_version == MODERN
        assert info.server_info == {"name": "modern-fake"}
        await client.list_tools()
        await client.call_tool("h\u00e9llo", {"x": 1})
        await client.request("resources/read", {"uri": "file:///a b"})
    assert fake.verbs() == ["POST"] * 4  # no GET, no DELETE, no notifications
    for call in fake.calls:
        meta = call.params["_meta"]
        assert meta["io.modelcontextprotocol/protocolVersion"] == MODERN
        assert call.headers["mcp-protocol-version"] == MODERN
        assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
        assert meta["io.modelcontextprotocol/clientInfo"] == {"name": "sb-test", "version": "9"}
        assert call.headers["mcp-method"] == call.method
        assert "mcp-session-id" not in call.headers
    tool_call = next(c for c in fake.calls if c.method == "tools/call")
    assert tool_call.headers["mcp-name"] == "=?base64?aMOpbGxv?="
    read = next(c for c in fake.calls if c.method == "resources/read")
    assert read.headers["mcp-name"] == "file:///a b"
    assert "mcp-name" not in next(c for c in fake.calls if c.method == "tools/list").headers


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("plain", "plain"),
        ("h\u00e9llo", "=?base64?aMOpbGxv?="),
        (" edge", "=?base64?IGVkZ2U=?="),
        ("=?base64?abc?=", "=?base64?PT9iYXNlNjQ/YWJjPz0=?="),
        ("new\nline", "=?base64?bmV3CmxpbmU=?="),
    ],
)
def test_header_value_encoding(value: str, encoded: str) -> None:
    assert encode_header_value(value) == encoded


async def test_user_meta_is_merged_but_cannot_override_the_version() -> None:
    fake = FakeServer(era="modern")
    async with fake.client(era="modern") as client:
        await client.request(
            "tools/list", {"_meta": {"progressToken": 5, "io.modelcontextprotocol/protocolVersion": "bogus"}}
        )
    meta = fake.calls[-1].params["_meta"]
    assert meta["progressToken"] == 5 and meta["io.modelcontextprotocol/protocolVersion"] == MODERN


async def test_auto_detects_legacy_from_400_and_caches_per_origin() -> None:
    fake = FakeServer()  # legacy: 400 text/plain to server/discover
    async with fake.client() as client:
        assert client.info.era == "legacy"
        await client.list_tools()
    assert fake.methods()[:3] == ["server/discover", "initialize", "notifications/initialized"]
    async with fake.client() as client:  # same origin: no second probe
        assert client.info.era == "legacy"
    assert fake.count("server/discover") == 1
    assert fake.count("initialize") == 2


async def test_auto_detects_modern_and_caches() -> None:
    fake = FakeServer(era="modern")
    async with fake.client() as client:
        assert client.info.era == "modern"
        await client.list_tools()
    async with fake.client() as client:
        assert client.info.era == "modern"
    assert fake.count("initialize") == 0


async def test_auto_falls_back_on_method_not_found_and_on_non_modern_discover_result() -> None:
    fake = FakeServer()

    async def not_found(call: Call) -> httpx2.Response:
        return error_reply(call.id, -32601, "Method not found")

    fake.on["server/discover"] = not_found
    async with fake.client() as client:
        assert client.info.era == "legacy"
    fake.era_cache.clear()

    async def legacy_discover(call: Call) -> httpx2.Response:
        return json_reply(call.id, {"supportedVersions": ["2025-11-25"], "capabilities": {}})

    fake.on["server/discover"] = legacy_discover
    async with fake.client() as client:
        assert client.info.era == "legacy"


async def test_stale_legacy_cache_recovers_when_server_became_modern() -> None:
    legacy = FakeServer()
    async with legacy.client():
        pass
    modern = FakeServer(era="modern")  # same origin, now a modern-only server: initialize -> -32022
    async with modern.client(era_cache=legacy.era_cache) as client:  # the same application
        assert client.info.era == "modern"
    assert modern.methods()[:2] == ["initialize", "server/discover"]


async def test_unsupported_version_retry_with_server_list() -> None:
    fake = FakeServer(era="modern")
    probes: list[str] = []

    async def picky(call: Call) -> httpx2.Response | None:
        version = call.params["_meta"]["io.modelcontextprotocol/protocolVersion"]
        probes.append(version)
        return error_reply(
            call.id,
            -32022,
            "Unsupported protocol version",
            status=400,
            data={"supported": ["2027-01-01"], "requested": version},
        )

    fake.on["server/discover"] = picky
    client = fake.client(era="modern")
    with pytest.raises(UnsupportedProtocolVersion, match="2027-01-01"):
        await client.connect()
    await client.close()
    assert probes == [MODERN]


async def test_recognized_modern_error_on_discover_does_not_fall_back() -> None:
    fake = FakeServer(era="modern")

    async def needs_capability(call: Call) -> httpx2.Response:
        return error_reply(
            call.id,
            -32021,
            "Missing required client capability",
            status=400,
            data={"requiredCapabilities": {"sampling": {}}},
        )

    fake.on["server/discover"] = needs_capability
    client = fake.client()
    with pytest.raises(McpError) as info:
        await client.connect()
    assert info.value.code == -32021 and "capability" in str(info.value)
    assert "initialize" not in fake.methods()
    await client.close()


async def test_modern_result_types() -> None:
    fake = FakeServer(era="modern")

    async def weird(call: Call) -> httpx2.Response:
        return fake.reply(call, {"resultType": "telepathy"})

    async with fake.client(era="modern") as client:
        fake.on["tools/call"] = weird
        with pytest.raises(ProtocolError, match="resultType"):
            await client.call_tool("x", {})


async def test_modern_input_required_round_trip() -> None:
    fake = FakeServer(era="modern")

    async def needs_input(call: Call) -> httpx2.Response:
        if "inputResponses" not in call.params:
            return fake.reply(
                call,
                {
                    "resultType": "input_required",
                    "requestState": "opaque-1",
                    "inputRequests": {"q1": {"method": "elicitation/create", "params": {"message": "name?"}}},
                },
            )
        assert call.params["requestState"] == "opaque-1"
        answer = call.params["inputResponses"]["q1"]
        return fake.reply(
            call, {"resultType": "complete", "content": [{"type": "text", "text": str(answer)}]}
        )

    async def handler(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return {"action": "accept", "content": {"name": "Ada"}} if method == "elicitation/create" else None

    async with fake.client(era="modern", on_server_request=handler) as client:
        fake.on["tools/call"] = needs_input
        result = await client.call_tool("ask", {})
    assert result.content[0]["text"] == str({"action": "accept", "content": {"name": "Ada"}})
    calls = [c for c in fake.calls if c.method == "tools/call"]
    assert len(calls) == 2 and calls[0].id != calls[1].id


async def test_modern_broken_stream_is_reissued_with_a_new_id() -> None:
    fake = FakeServer(era="modern", mode="sse")
    attempts: list[Any] = []

    async def flaky(call: Call) -> httpx2.Response:
        attempts.append(call.id)
        if len(attempts) == 1:
            return sse_reply(": started\n\n")
        return fake.reply(call, {"content": []})

    async with fake.client(era="modern") as client:
        fake.on["tools/call"] = flaky
        await client.call_tool("x", {})
    assert len(attempts) == 2 and attempts[0] != attempts[1]
    assert "GET" not in fake.verbs()


ANNOTATED_TOOLS = [
    {
        "name": "deploy",
        "inputSchema": {
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "dry_run": {"type": "boolean", "x-mcp-header": "Dry-Run"},
                "nested": {
                    "type": "object",
                    "properties": {"tier": {"type": "integer", "x-mcp-header": "Tier"}},
                },
                "note": {"type": "string"},
            },
        },
    },
    {
        "name": "bad_type",
        "inputSchema": {"type": "object", "properties": {"n": {"type": "number", "x-mcp-header": "N"}}},
    },
    {
        "name": "bad_position",
        "inputSchema": {
            "type": "object",
            "properties": {"xs": {"type": "array", "items": {"type": "string", "x-mcp-header": "X"}}},
        },
    },
    {
        "name": "duplicate",
        "inputSchema": {
            "type": "object",
            "properties": {
                "a": {"type": "string", "x-mcp-header": "Same"},
                "b": {"type": "string", "x-mcp-header": "same"},
            },
        },
    },
    {
        "name": "bad_token",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "string", "x-mcp-header": "has space"}},
        },
    },
]


async def test_x_mcp_header_mirroring_and_invalid_tools_dropped() -> None:
    fake = FakeServer(era="modern")
    fake.tools = ANNOTATED_TOOLS
    async with fake.client(era="modern") as client:
        tools = await client.list_tools()
        assert [t["name"] for t in tools] == ["deploy"]
        await client.call_tool(
            "deploy", {"region": "eu-w\u00e9st", "dry_run": False, "nested": {"tier": 2}, "note": "x"}
        )
        await client.call_tool("deploy", {"region": None})
    first, second = [c for c in fake.calls if c.method == "tools/call"]
    assert first.headers["mcp-param-region"] == encode_header_value("eu-w\u00e9st")
    assert first.headers["mcp-param-dry-run"] == "false"
    assert first.headers["mcp-param-tier"] == "2"
    assert not any(h.startswith("mcp-param-") for h in second.headers)  # null/missing: omitted


async def test_header_mismatch_relists_and_retries_once() -> None:
    fake = FakeServer(era="modern")
    fake.tools = ANNOTATED_TOOLS[:1]
    mismatches = 0

    async def strict(call: Call) -> httpx2.Response | None:
        nonlocal mismatches
        if "mcp-param-region" not in call.headers:
            mismatches += 1
            return error_reply(call.id, -32020, "Header mismatch", status=400)
        return None

    async with fake.client(era="modern") as client:
        fake.on["tools/call"] = strict
        await client.call_tool("deploy", {"region": "eu"})  # annotations unknown until tools/list
    assert mismatches == 1
    assert fake.methods()[1:] == ["tools/call", "tools/list", "tools/call"]


async def test_modern_server_requests_on_stream_are_ignored() -> None:
    fake = FakeServer(era="modern", mode="sse")

    async def with_request(call: Call) -> httpx2.Response:
        return sse_reply(
            sse_message({"jsonrpc": "2.0", "id": "s", "method": "ping"}),
            sse_message(result_msg(call.id, {"content": []})),
        )

    async with fake.client(era="modern") as client:
        fake.on["tools/call"] = with_request
        await client.call_tool("x", {})
    assert all(c.method is not None for c in fake.calls)  # no response POSTed in the modern era


# --- argument and configuration errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["", "mcp.example.com", "ftp://x/y", "https://h/mcp#frag", "https://u:p@h/mcp"]
)
def test_bad_urls(url: str) -> None:
    from core.errors import InvalidUrlError

    with pytest.raises(InvalidUrlError):
        McpClient(url)


def test_bad_configuration() -> None:
    from core.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        McpClient(URL, era="future")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        McpClient(URL, protocol_version="1999-01-01")
    with pytest.raises(ConfigurationError):
        McpClient(URL, era="legacy", protocol_version=MODERN)
    with pytest.raises(ConfigurationError):
        McpClient(URL, timeout=0)


async def test_unserializable_arguments_are_a_typed_error() -> None:
    fake = FakeServer()
    async with fake.client(era="legacy") as client:
        with pytest.raises(ProtocolError, match="JSON"):
            await client.call_tool("echo", {"x": {1, 2}})


async def test_pinned_legacy_version_is_offered() -> None:
    fake = FakeServer(version="2025-06-18")
    async with fake.client(protocol_version="2025-06-18") as client:
        assert client.info.protocol_version == "2025-06-18"
    assert fake.calls[0].params["protocolVersion"] == "2025-06-18"
    assert "server/discover" not in fake.methods()
