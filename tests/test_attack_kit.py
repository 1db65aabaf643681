"""Test kit for the attack, race and durability tests: raw HTTP servers we fully control.

* `RawHttpServer`: an asyncio HTTP/1.1 server on a real socket (the services talk to it through the
  policy-enforcing client, so nothing is mocked below httpx). Routes map (method, path) to a handler
  returning a `Reply`, whose body may be bytes or an async generator that never ends. Every response
  closes its connection; the body of a streamed reply is delimited by the close.
* `Trap`: a TCP listener that only counts connections (S-05: it must see zero).
* `ScriptedMcp`: a minimal legacy-era MCP server (JSON responses) on a `RawHttpServer`, with hooks to
  replace any method's answer by something hostile, an optional required header (bearer / API key)
  and a chosen `Mcp-Session-Id`.
* `scan`: search files, texts and log records for marker strings.

The module holds a few self-tests of the kit so it is collected like any test module.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import httpx2
import pytest

# --- raw HTTP server --------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes
    port: int

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterator[bytes] = b""

    @classmethod
    def json(cls, document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(
            status, {"content-type": "application/json", **(headers or {})}, json.dumps(document).encode()
        )

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Reply:
        return cls(status, {"location": location})


Handler = Callable[[Request], Reply | Awaitable[Reply]]
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


class RawHttpServer:
    """`routes[(METHOD, path)] = handler`; unknown routes answer 404. Records every request."""

    def __init__(self, routes: dict[tuple[str, str], Handler] | None = None) -> None:
        self.routes: dict[tuple[str, str], Handler] = dict(routes or {})
        self.requests: list[Request] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> RawHttpServer:
        self._server = await asyncio.start_server(self._serve, host, port, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        self.host = host
        return self

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to(self, path: str, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start() if self._server is None else self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = b""
            if headers.get("content-length", "0").isdigit() and int(headers.get("content-length", "0")):
                body = await reader.readexactly(int(headers["content-length"]))
            request = Request(method, target, headers, body, self.port)
            self.requests.append(request)
            handler = self.routes.get((method, request.path)) or self.routes.get((method, "*"))
            reply = handler(request) if handler else Reply(404, {"content-type": "text/plain"}, b"not found")
            if asyncio.iscoroutine(reply):
                reply = await reply
            await self._write(writer, reply)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, reply: Reply) -> None:
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'X')}", "connection: close"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        if isinstance(reply.body, bytes):
            head.append(f"content-length: {len(reply.body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)
            await writer.drain()
            return
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        async for chunk in reply.body:  # close-delimited body: ends when we close (or never)
            writer.write(chunk)
            await writer.drain()


class Trap:
    """Counts TCP connections (plain or TLS attempts alike) and closes them at once."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.2", port: int = 0) -> Trap:
        self._server = await asyncio.start_server(self._count, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _count(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def trap_urls(port: int, path: str = "/") -> list[str]:
    """Every spelling of 127.0.0.2:port the requirements list (S-05), http and https."""
    hosts = ["127.0.0.2", "[::ffff:127.0.0.2]", "2130706434", "0x7f000002", "127.2"]
    return [f"{scheme}://{host}:{port}{path}" for host in hosts for scheme in ("https", "http")]


# --- a scripted MCP server -----------------------------------------------------------------------------

PROTOCOL_VERSION = "2025-06-18"


def sse(*messages: Any, retry: int | None = None) -> bytes:
    parts = [f"retry: {retry}\n\n" if retry is not None else ""]
    parts += [f"data: {json.dumps(m)}\n\n" for m in messages]
    return "".join(parts).encode()


class ScriptedMcp:
    """A legacy-era MCP server. `tools` is what tools/list returns; `hostile[method]` replaces the
    answer to that JSON-RPC method with whatever `Reply` the callable builds from the request."""

    def __init__(
        self,
        tools: list[dict[str, Any]] | None = None,
        *,
        session_id: str = "session-1",
        required_header: tuple[str, str] | None = None,
    ) -> None:
        self.tools = (
            tools
            if tools is not None
            else [
                {
                    "name": "echo",
                    "description": "Echo a message",
                    "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
                },
                {
                    "name": "add",
                    "description": "Add two numbers",
                    "inputSchema": {
                        "type": "object",
                        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    },
                },
            ]
        )
        self.session_id = session_id
        self.required_header = required_header
        self.hostile: dict[str, Callable[[Request, dict[str, Any]], Reply | Awaitable[Reply]]] = {}
        self.server = RawHttpServer(
            {
                ("POST", "/mcp"): self._post,
                ("DELETE", "/mcp"): lambda r: Reply(200),
                ("GET", "/mcp"): lambda r: Reply(405),
            }
        )
        self.calls: dict[str, int] = {}

    async def start(self, host: str = "127.0.0.1") -> ScriptedMcp:
        await self.server.start(host)
        return self

    async def stop(self) -> None:
        await self.server.stop()

    @property
    def url(self) -> str:
        return self.server.origin + "/mcp"

    def _authorized(self, request: Request) -> bool:
        if self.required_header is None:
            return True
        name, value = self.required_header
        return request.headers.get(name.lower()) == value

    async def _post(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(
                401,
                {"www-authenticate": 'Bearer realm="scripted"', "content-type": "application/json"},
                b'{"error":"invalid_token"}',
            )
        message = request.json()
        method = message.get("method", "")
        self.calls[method] = self.calls.get(method, 0) + 1
        if "id" not in message:
            return Reply(202)
        if (
            method != "initialize"
            and method != "server/discover"
            and request.headers.get("mcp-session-id") != self.session_id
        ):
            return Reply(
                404,
                {"content-type": "application/json"},
                b'{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"session not found"}}',
            )
        hook = self.hostile.get(method)
        if hook is not None:
            reply = hook(request, message)
            return await reply if asyncio.iscoroutine(reply) else reply
        return self.answer(message)

    def answer(self, message: dict[str, Any]) -> Reply:
        method, rid = message["method"], message["id"]
        if method == "server/discover":
            return Reply.json({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no"}})
        if method == "initialize":
            result = {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "scripted", "version": "1"},
            }
            return Reply.json(
                {"jsonrpc": "2.0", "id": rid, "result": result}, headers={"mcp-session-id": self.session_id}
            )
        if method == "tools/list":
            return Reply.json({"jsonrpc": "2.0", "id": rid, "result": {"tools": self.tools}})
        if method == "tools/call":
            arguments = message.get("params", {}).get("arguments", {})
            text = json.dumps(arguments)
            return Reply.json(
                {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}}
            )
        if method == "ping":
            return Reply.json({"jsonrpc": "2.0", "id": rid, "result": {}})
        return Reply.json(
            {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "unknown method"}}
        )


# --- searching for canaries ------------------------------------------------------------------------------


def hits(markers: Iterable[str], where: str, text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    found = []
    for marker in markers:
        for encoded in {marker.encode(), marker.encode("utf-16-le")}:
            at = data.find(encoded)
            if at >= 0:
                context = data[max(0, at - 80) : at + len(encoded) + 40]
                found.append(f"{marker!r} in {where}: ...{context!r}...")
    return found


def scan_files(markers: Iterable[str], folder: Path) -> list[str]:
    markers = list(markers)
    found: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            found += hits(markers, str(path), path.read_bytes())
    return found


def scan_records(markers: Iterable[str], records: Iterable[logging.LogRecord]) -> list[str]:
    markers = list(markers)
    found: list[str] = []
    for record in records:
        parts = [record.getMessage(), repr(record.args), str(record.exc_text or "")]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]) + str(record.exc_info[1]))
        found += hits(markers, f"log record {record.name}", "\n".join(parts))
    return found


# --- self-tests ----------------------------------------------------------------------------------------


async def test_raw_server_routes_streams_and_counts() -> None:
    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b": keep-alive\n\n"
            await asyncio.sleep(0)

    server = await RawHttpServer(
        {
            ("GET", "/a"): lambda r: Reply.json({"ok": True}),
            ("GET", "/s"): lambda r: Reply(200, {"content-type": "text/event-stream"}, forever()),
        }
    ).start()
    try:
        async with httpx2.AsyncClient() as client:
            assert (await client.get(server.origin + "/a?x=1")).json() == {"ok": True}
            assert (await client.get(server.origin + "/nope")).status_code == 404
            async with client.stream("GET", server.origin + "/s") as response:
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > 10_000:
                        break
        assert server.connections == 3 and server.to("/a")[0].target == "/a?x=1"
    finally:
        await server.stop()


async def test_trap_counts_connections() -> None:
    trap = await Trap().start()
    try:
        async with httpx2.AsyncClient() as client:
            with pytest.raises(httpx2.HTTPError):
                await client.get(f"http://127.0.0.2:{trap.port}/")
        assert trap.connections == 1
    finally:
        await trap.stop()


async def test_scripted_mcp_speaks_enough_mcp() -> None:
    from core.mcp.client import McpClient

    server = await ScriptedMcp().start()
    try:
        async with httpx2.AsyncClient() as http, McpClient(server.url, http=http) as client:
            assert [t["name"] for t in await client.list_tools()] == ["echo", "add"]
            result = await client.call_tool("echo", {"message": "hi"})
            assert "hi" in result.content[0]["text"]
        assert server.calls["initialize"] == 1
    finally:
        await server.stop()


def test_scan_finds_markers_in_both_encodings(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"xx" + "MARK-1".encode("utf-16-le"))
    (tmp_path / "b.txt").write_text("nothing")
    assert [f.split(":")[0] for f in scan_files(["MARK-1"], tmp_path)] == [
        f"'MARK-1' in {tmp_path / 'a.bin'}"
    ]
