"""The gateway's ASGI application: `/agents/<agent>/mcp`, MCP Streamable HTTP in both eras.

Why not the official SDK's server (`StreamableHTTPSessionManager` + lowlevel `Server`): measured
on this machine, it costs ~0.8 ms of server CPU per `tools/call` in JSON mode and ~1.9 ms with SSE
responses (pydantic validation, per-request memory streams and task groups), against ~0.27 ms for
a plain ASGI handler under the same uvicorn; a gateway also pays its own upstream call, so the SDK
alone would spend the whole 1 ms budget. Its sessions also live in one process's memory, and
several gateway processes serve one store here. So the request path is this module (uvicorn,
stdlib `json`), and the SDK supplies what is protocol knowledge rather than plumbing: the
2026-07-28 validation ladder and its error-to-HTTP-status table (`gateway.protocol`).

Order of checks on every request, before anything reaches an upstream server: path, body size,
bearer token (`gateway.auth`), the agent's request rate, then the message; a tool call also needs a
visible tool (policy, pinning, connection: `gateway.catalog`) and a free concurrent-call slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from mcp.shared.inbound import (
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
)

from core.errors import McpError, RequestTimeout, SwitchboardError
from core.services import Switchboard
from gateway import protocol
from gateway.audit import AuditWriter
from gateway.auth import Identity, authenticate, challenge_headers
from gateway.catalog import AgentView, Catalog
from gateway.limits import Limiter, retry_after
from gateway.streams import Streams, serve_stream

log = logging.getLogger(__name__)

_PATH = re.compile(r"/agents/([^/]+)/mcp/?")


@dataclass(frozen=True)
class GatewayConfig:
    poll_interval: float = 1.0  # seconds between store checks; other processes' changes apply within it
    max_request_bytes: int = 1 << 20
    max_response_bytes: int = 8 << 20
    upstream_timeout: float = 60.0
    requests_per_minute: int = 1200  # per agent unless its policy says otherwise
    max_concurrent_calls: int = 32  # per agent unless its policy says otherwise
    loopback: bool = True  # listening on a loopback address: Host and Origin must name loopback


class _Reject(Exception):
    """Answer the request with this status and JSON-RPC error, and stop."""

    def __init__(self, status: int, code: int, message: str, headers: tuple = (), message_id: Any = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.message_id = (
            status,
            code,
            message,
            headers,
            message_id,
        )


class GatewayApp:
    def __init__(self, service: Switchboard, config: GatewayConfig | None = None) -> None:
        self.service = service
        self.config = config or GatewayConfig()
        self.streams = Streams()
        self.audit = AuditWriter(self.service.store)
        self.catalog = Catalog(
            service, poll_interval=self.config.poll_interval, on_change=self._changed, audit=self.audit
        )
        self.limiter = Limiter()
        self.closed_sessions: set[str] = set()  # DELETEd here (best effort: other processes do not know)

    def _changed(self, agents: set[str]) -> None:
        self.streams.notify(agents, lambda token_hash: token_hash in self.catalog.tokens)

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._http(scope, receive, send)
        except _Reject as reject:
            body = protocol.encode_error(reject.message_id, reject.code, reject.message)
            await _respond(send, reject.status, body, reject.headers)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.catalog.start()
                except SwitchboardError as exc:  # e.g. the store is busy or unreadable: uvicorn exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.streams.close_all()
                await self.catalog.stop()
                await self.audit.flush()  # what arrived since the last poll
                await self.service.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        if path == "/healthz":
            body = json.dumps({"status": "ok", "polls": self.catalog.polls, "streams": self.streams.count()})
            await _respond(send, 200, body.encode())
            return
        if not _origin_allowed(scope, self.config.loopback):
            await _respond(send, 403, b'{"error":"cross-origin requests are refused"}')
            return
        match = _PATH.fullmatch(path)
        if match is None:
            await _respond(send, 404, b'{"error":"not found: MCP is served at /agents/<agent>/mcp"}')
            return
        identity = authenticate(self.catalog, unquote(match[1]), _header(scope, b"authorization"))
        if identity is None:
            raise _Reject(
                401, protocol.INVALID_REQUEST, "a valid agent token is required", challenge_headers(scope)
            )
        policy = self.catalog.policy(identity.agent_id)
        wait = self.limiter.admit(
            identity.agent_id,
            policy.requests_per_minute or self.config.requests_per_minute,
            self.catalog.instances,
        )
        if wait is not None:
            raise _Reject(
                429,
                protocol.RATE_LIMITED,
                f"agent {identity.agent} is over its request rate limit",
                ((b"retry-after", retry_after(wait).encode()),),
            )
        method = scope["method"]
        if method == "POST":
            await self._post(identity, scope, receive, send)
        elif method == "GET":
            await self._get(identity, scope, receive, send)
        elif method == "DELETE":
            session = self._session(identity, scope)
            self.closed_sessions.add(session)
            await _respond(send, 200, b"")
        else:
            await _respond(send, 405, b"", ((b"allow", b"GET, POST, DELETE"),))

    # --- POST -----------------------------------------------------------------------------------

    async def _post(self, identity: Identity, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await _read_body(scope, receive, self.config.max_request_bytes)
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            raise _Reject(400, protocol.PARSE_ERROR, "the body is not JSON") from None
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            raise _Reject(400, protocol.INVALID_REQUEST, "the body must be one JSON-RPC 2.0 message object")
        if "method" not in message:
            await _respond(send, 202, b"")  # a response to a request we never send: nothing to do
            return
        version = _header(scope, b"mcp-protocol-version")
        modern = version in protocol.MODERN_PROTOCOL_VERSIONS
        if "id" not in message:
            await _respond(send, 202, b"")  # notifications: none needs an answer from a gateway
            return
        try:
            await self._request(identity, scope, receive, send, message, modern)
        except _Reject as reject:
            if reject.message_id is None:
                reject.message_id = message["id"]  # the client matches the error to its request
            raise

    async def _request(
        self, identity: Identity, scope: dict[str, Any], receive: Any, send: Any, message: dict, modern: bool
    ) -> None:
        version = _header(scope, b"mcp-protocol-version")
        message_id, rpc = message["id"], message["method"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        headers: tuple = ()
        if modern:
            self._check_modern(scope, message)
        elif rpc == "initialize":
            session = protocol.new_session_id(identity.token_hash)
            headers = ((b"mcp-session-id", session.encode()),)
        else:
            if version is not None and version not in protocol.HANDSHAKE_PROTOCOL_VERSIONS:
                raise _Reject(400, protocol.INVALID_REQUEST, f"unsupported MCP-Protocol-Version {version!r}")
            self._session(identity, scope)
        view = await self.catalog.view(identity.agent_id)
        if rpc == "tools/call":
            await _respond(send, 200, await self._call(identity, view, message_id, params, modern))
            return
        if rpc == "tools/list":
            if params.get("cursor") is not None:
                raise _Reject(
                    protocol.error_status(protocol.INVALID_PARAMS, modern),
                    protocol.INVALID_PARAMS,
                    "invalid cursor",
                    message_id=message_id,
                )
            listing = b'{"tools":' + view.listing + (protocol.MODERN_LIST_FIELDS if modern else b"}")
            await _respond(send, 200, protocol.encode_raw_result(message_id, listing))
            return
        if rpc == "subscriptions/listen" and modern:
            await self._listen(identity, message_id, params, receive, send)
            return
        if rpc == "initialize" and not modern:
            result = protocol.initialize_result(params.get("protocolVersion"), identity.agent)
        elif rpc == "server/discover" and modern:
            result = protocol.discover_result(identity.agent)
        elif rpc == "ping" and not modern:
            result = {}
        else:
            status = protocol.error_status(protocol.METHOD_NOT_FOUND, modern)
            raise _Reject(
                status, protocol.METHOD_NOT_FOUND, f"method not found: {rpc}", message_id=message_id
            )
        await _respond(send, 200, protocol.encode(message_id, result), headers)

    def _check_modern(self, scope: dict[str, Any], message: dict[str, Any]) -> None:
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        duplicated = find_duplicated_routing_header(raw)
        verdict = classify_inbound_request(message, headers=dict(raw))
        if duplicated is not None:
            raise _Reject(
                400,
                protocol.HEADER_MISMATCH,
                f"{duplicated} header appears more than once",
                message_id=message.get("id"),
            )
        if isinstance(verdict, InboundLadderRejection):
            status = protocol.error_status(verdict.code, True)
            raise _Reject(status, verdict.code, verdict.message, message_id=message.get("id"))

    def _session(self, identity: Identity, scope: dict[str, Any]) -> str:
        session = _header(scope, b"mcp-session-id")
        if session is None:
            raise _Reject(400, protocol.INVALID_REQUEST, "Mcp-Session-Id is required after initialize")
        if session in self.closed_sessions or not protocol.session_belongs(session, identity.token_hash):
            raise _Reject(404, protocol.INVALID_REQUEST, "session not found: initialize a new one")
        return session

    # --- tools/call -----------------------------------------------------------------------------

    async def _call(
        self, identity: Identity, view: AgentView, message_id: Any, params: dict[str, Any], modern: bool
    ) -> bytes:
        """The encoded response to a tools/call (encoded once: its size is the response limit's)."""
        name, arguments = params.get("name"), params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(name, str) or not isinstance(arguments, dict):
            raise _Reject(
                protocol.error_status(protocol.INVALID_PARAMS, modern),
                protocol.INVALID_PARAMS,
                "tools/call needs a tool name and an arguments object",
            )
        route = view.routes.get(name)
        if route is None:
            refusal = view.refusal(name)
            outcome = refusal.outcome if refusal else "unknown_tool"
            message = refusal.message if refusal else f"agent {identity.agent} has no tool named {name!r}"
            self.audit.add(
                agent_id=identity.agent_id,
                token_id=identity.token_id,
                connector_id=refusal.connector_id if refusal else "",
                tool=refusal.tool if refusal else name,
                outcome=outcome,
                arguments=arguments,
                error=message,
            )
            raise _Reject(
                protocol.error_status(protocol.INVALID_PARAMS, modern), protocol.INVALID_PARAMS, message
            )
        policy = self.catalog.policy(identity.agent_id)
        limit = policy.max_concurrent_calls or self.config.max_concurrent_calls
        if not self.limiter.start_call(identity.agent_id, limit, self.catalog.instances):
            self.audit.add(
                agent_id=identity.agent_id,
                token_id=identity.token_id,
                connector_id=route.connector_id,
                tool=route.tool,
                outcome="busy",
                arguments=arguments,
            )
            raise _Reject(
                429,
                protocol.RATE_LIMITED,
                f"agent {identity.agent} has {limit} calls running already",
                ((b"retry-after", b"1"),),
            )
        started = time.perf_counter()
        outcome, error = "ok", None
        try:
            upstream = await self.service.call_resolved(
                route.target, route.tool, arguments, timeout=self.config.upstream_timeout
            )
            response = protocol.encode(message_id, protocol.tool_result(upstream.raw, modern))
            if upstream.is_error:
                outcome = "tool_error"
            if len(response) > self.config.max_response_bytes:
                outcome, error = (
                    "too_large",
                    f"{route.connector}'s result is larger than {self.config.max_response_bytes} bytes",
                )
                response = protocol.encode(message_id, protocol.error_result(error, modern))
        except SwitchboardError as exc:
            outcome, error = self._failure(route.connector, exc)
            response = protocol.encode(message_id, protocol.error_result(error, modern))
        finally:
            self.limiter.end_call(identity.agent_id)
        self.audit.add(
            agent_id=identity.agent_id,
            token_id=identity.token_id,
            connector_id=route.connector_id,
            tool=route.tool,
            outcome=outcome,
            arguments=arguments,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=error,
        )
        return response

    def _failure(self, connector: str, exc: SwitchboardError) -> tuple[str, str]:
        """(audit outcome, message for the agent) of a failed upstream call."""
        if isinstance(exc, RequestTimeout):
            return "timeout", f"{connector} did not answer within {self.config.upstream_timeout:g} s"
        if isinstance(exc, McpError):
            return "upstream_error", f"{connector} answered with an error: {exc}"
        return "upstream_error", f"calling {connector} failed: {exc}"

    # --- streams --------------------------------------------------------------------------------

    async def _get(self, identity: Identity, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if _header(scope, b"mcp-protocol-version") in protocol.MODERN_PROTOCOL_VERSIONS:
            await _respond(send, 405, b"", ((b"allow", b"POST"),))
            return
        self._session(identity, scope)
        if "text/event-stream" not in (_header(scope, b"accept") or ""):
            await _respond(send, 406, b'{"error":"the GET stream is text/event-stream"}')
            return
        stream = self.streams.open(identity.agent_id, identity.token_hash)
        try:
            await serve_stream(stream, receive, send)
        finally:
            self.streams.close(stream)

    async def _listen(
        self, identity: Identity, message_id: Any, params: dict[str, Any], receive: Any, send: Any
    ) -> None:
        wanted = params.get("notifications") if isinstance(params.get("notifications"), dict) else {}
        honored = {"toolsListChanged": True} if wanted.get("toolsListChanged") else {}
        meta = {protocol.SUBSCRIPTION_ID: message_id}
        ack = protocol.sse_event(
            {
                "jsonrpc": "2.0",
                "method": "notifications/subscriptions/acknowledged",
                "params": {"notifications": honored, "_meta": meta},
            }
        )
        last = protocol.sse_event(
            {"jsonrpc": "2.0", "id": message_id, "result": {"_meta": meta, "resultType": "complete"}}
        )
        stream = self.streams.open(identity.agent_id, identity.token_hash, message_id)
        if not honored:
            self.streams.close(stream)
            stream.queue.put_nowait(None)
        try:
            await serve_stream(stream, receive, send, first=ack, last=last)
        finally:
            self.streams.close(stream)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _origin_allowed(scope: dict[str, Any], loopback: bool) -> bool:
    """DNS-rebinding guard (Streamable HTTP: servers MUST validate Origin). On a loopback address
    the Host and any Origin must name loopback (any port); elsewhere an Origin must be the
    gateway's own. Agents are not browsers and send no Origin at all."""
    host, origin = _header(scope, b"host") or "", _header(scope, b"origin")
    if loopback and urlsplit(f"//{host}").hostname not in _LOOPBACK_NAMES:
        return False
    if origin is None:
        return True
    if loopback:
        return urlsplit(origin).hostname in _LOOPBACK_NAMES
    return urlsplit(origin).netloc.lower() == host.lower()


async def _read_body(scope: dict[str, Any], receive: Any, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Reject(413, protocol.INVALID_REQUEST, f"the request body is larger than {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Reject(413, protocol.INVALID_REQUEST, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, headers: tuple = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
