"""One session strategy per protocol era, chosen once negotiation succeeds (`core.mcp.negotiation`).

The call loop in `core.mcp.client` asks its `Session` what differs between the eras instead of
branching on the era itself:

| | `LegacySession` (2024-11-05 … 2025-11-25) | `ModernSession` (2026-07-28) |
| --- | --- | --- |
| framing | plain JSON-RPC; `Mcp-Session-Id`, `MCP-Protocol-Version` | `_meta` envelope; `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*` |
| an SSE response that ends early | resumed by GET with `Last-Event-ID` | lost: re-issued with a new id |
| 404 on a request with a session id | the session is lost: re-initialize | an ordinary error |
| requests the server sends on a stream | answered by POST | ignored (the server must use `input_required`) |
| notifications, cancellation, DELETE | sent | none on the HTTP wire |

A session is immutable once made: a new negotiation makes a new one, so nothing is rolled back.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Final

import httpx2

from core.errors import McpError, ProtocolError, SwitchboardError
from core.mcp import jsonrpc
from core.mcp.headers import ToolHeaders, encode_header_value
from core.mcp.http import McpHttp, release
from core.mcp.jsonrpc import encode_notification, encode_request
from core.mcp.types import Era

__all__ = [
    "LATEST_HANDSHAKE_VERSION",
    "LegacySession",
    "ModernSession",
    "Reply",
    "Session",
    "SessionLost",
    "StreamBroken",
]

logger = logging.getLogger(__name__)

LATEST_HANDSHAKE_VERSION: Final = "2025-11-25"
ACCEPT_BOTH: Final = "application/json, text/event-stream"
_MAX_INPUT_ROUNDS: Final = 10
_META_PROTOCOL_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
_META_CLIENT_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
_META_CLIENT_INFO: Final = "io.modelcontextprotocol/clientInfo"
_NAME_BEARING_METHODS: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
SESSION_ID_RE: Final = re.compile(r"[\x21-\x7e]+")


class SessionLost(Exception):
    """The server forgot our session (legacy): re-initialize, then the request may be replayed."""


class StreamBroken(Exception):
    """A modern-era response stream ended without our response: the request must be re-issued."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one request: its `result` object, the response headers, and how many body
    bytes carried it (for the listing's total-bytes cap)."""

    result: dict[str, Any]
    headers: httpx2.Headers
    size: int


class Session:
    """What the call loop needs to know about the era; the defaults are the modern era's."""

    era: Era
    version: str | None
    session_id: str | None = None
    resumes_streams = False  # an SSE response that ends early is resumed by GET (else: re-issued)
    answers_server_requests = False  # requests the server sends on a stream get an answer
    announces_cancellation = False  # a request the caller gave up on is cancelled by notification
    listens = False  # the server may talk to us on a standalone GET stream

    def __init__(self, http: McpHttp) -> None:
        self.http = http

    def frame(
        self, method: str, params: dict[str, Any] | None, request_id: int
    ) -> tuple[bytes, dict[str, str]]:
        """The POST body and headers of one request."""
        raise NotImplementedError

    def get_headers(self) -> dict[str, str]:
        """Headers of a GET (resumption or the standalone stream)."""
        raise NotImplementedError

    def is_lost(self, status: int, error: dict[str, Any] | None, sent: dict[str, str]) -> bool:
        """Whether a non-2xx answer to a request sent with `sent` headers means the session is gone."""
        return False

    def wants_input(self, method: str, result: dict[str, Any], rounds: int) -> bool:
        """Whether `result` asks for input before the request can complete (raises on nonsense)."""
        return False

    def listed_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A `tools/list` result as the caller gets it."""
        return tools

    def relists_after(self, exc: McpError, method: str) -> bool:
        """Whether `exc` is fixed by listing the tools again and retrying once."""
        return False

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        """Send a notification (none exist on the modern HTTP wire)."""

    async def notify_quietly(self, method: str, params: dict[str, Any] | None) -> None:
        try:
            await self.notify(method, params)
        except SwitchboardError as exc:
            logger.debug("%s on %s failed: %s", method, self.http.shown, type(exc).__name__)

    async def answer(self, body: bytes) -> None:
        """POST our response to a request the server sent."""

    async def end(self) -> None:
        """Tell the server we are done (DELETE in the legacy era)."""


class LegacySession(Session):
    """An `initialize` session. Made without a version and id for the handshake itself, then again
    with what `initialize` returned."""

    era: Era = "legacy"
    resumes_streams = True
    answers_server_requests = True
    announces_cancellation = True

    def __init__(self, http: McpHttp, version: str | None = None, session_id: str | None = None) -> None:
        super().__init__(http)
        self.version = version
        self.session_id = session_id
        headers = {"accept": ACCEPT_BOTH, "content-type": "application/json"}
        if version is not None:
            headers["mcp-protocol-version"] = version
        if session_id is not None:
            headers["mcp-session-id"] = session_id
        self._post_headers = headers  # shared by every request of the session; never mutated

    @property
    def listens(self) -> bool:  # type: ignore[override]
        return self.session_id is not None  # the GET stream is per session

    def frame(
        self, method: str, params: dict[str, Any] | None, request_id: int
    ) -> tuple[bytes, dict[str, str]]:
        return encode_request(request_id, method, params), self._post_headers

    def get_headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if self.version is not None:
            headers["mcp-protocol-version"] = self.version
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
        return headers

    def is_lost(self, status: int, error: dict[str, Any] | None, sent: dict[str, str]) -> bool:
        # A 404 with -32601 is "method not found", not a lost session.
        return (
            status == 404
            and "mcp-session-id" in sent
            and (error is None or error.get("code") != jsonrpc.METHOD_NOT_FOUND)
        )

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        response = await self.http.send(
            "POST",
            dict(self._post_headers),
            encode_notification(method, params),
            method=method,
            seconds=self.http.timeout,
        )
        await release(response)
        if response.status_code >= 400:
            logger.warning("%s on %s answered HTTP %s", method, self.http.shown, response.status_code)

    async def answer(self, body: bytes) -> None:
        try:
            response = await self.http.send(
                "POST", dict(self._post_headers), body, method=None, seconds=self.http.timeout
            )
            await release(response)
            if response.status_code >= 400:
                logger.warning("answering the server on %s: HTTP %s", self.http.shown, response.status_code)
        except SwitchboardError as exc:
            logger.warning("answering the server on %s failed: %s", self.http.shown, type(exc).__name__)

    async def end(self) -> None:
        if self.session_id is None:
            return
        headers = {
            "mcp-protocol-version": self.version or LATEST_HANDSHAKE_VERSION,
            "mcp-session-id": self.session_id,
        }
        try:
            async with asyncio.timeout(min(self.http.timeout, 5.0)):
                response = await self.http.send(
                    "DELETE", headers, None, method=None, seconds=self.http.timeout
                )
                await release(response)
            if response.status_code not in (200, 202, 204, 404, 405):
                logger.debug("DELETE session on %s answered %s", self.http.shown, response.status_code)
        except (SwitchboardError, TimeoutError) as exc:
            logger.debug("DELETE session on %s failed: %s", self.http.shown, type(exc).__name__)


class ModernSession(Session):
    """A 2026-07-28 "session": stateless; every request carries the negotiated version and our
    capabilities in `_meta`, and routing headers."""

    era: Era = "modern"

    def __init__(
        self, http: McpHttp, version: str, capabilities: dict[str, Any], client_info: dict[str, Any]
    ) -> None:
        super().__init__(http)
        self.version = version
        self._meta = {
            _META_PROTOCOL_VERSION: version,
            _META_CLIENT_CAPABILITIES: capabilities,
            _META_CLIENT_INFO: client_info,
        }
        self._post_headers = {
            "accept": ACCEPT_BOTH,
            "content-type": "application/json",
            "mcp-protocol-version": version,
        }
        self.tool_headers = ToolHeaders()

    def frame(
        self, method: str, params: dict[str, Any] | None, request_id: int
    ) -> tuple[bytes, dict[str, str]]:
        headers = dict(self._post_headers)
        body_params = dict(params) if params else {}
        user_meta = body_params.get("_meta")
        # The caller's `_meta` is kept, but the protocol fields are ours.
        body_params["_meta"] = {**user_meta, **self._meta} if isinstance(user_meta, dict) else self._meta
        headers["mcp-method"] = method
        name_key = _NAME_BEARING_METHODS.get(method)
        if name_key is not None:
            name = body_params.get(name_key)
            if isinstance(name, str):
                headers["mcp-name"] = encode_header_value(name)
                if method == "tools/call":
                    headers.update(self.tool_headers.for_call(name, body_params.get("arguments")))
        return encode_request(request_id, method, body_params), headers

    def wants_input(self, method: str, result: dict[str, Any], rounds: int) -> bool:
        result_type = result.get("resultType", "complete")
        if result_type == "input_required":
            if rounds >= _MAX_INPUT_ROUNDS:
                raise ProtocolError(
                    f"{method}: the server asked for input more than {_MAX_INPUT_ROUNDS} times"
                )
            return True
        if result_type != "complete":
            raise ProtocolError(f"{method}: unknown resultType {str(result_type)[:40]!r}")
        return False

    def listed_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.tool_headers.absorb(tools, self.http.shown)

    def relists_after(self, exc: McpError, method: str) -> bool:
        # 400 HeaderMismatch: our x-mcp-header annotations are stale.
        return exc.code == jsonrpc.HEADER_MISMATCH and method == "tools/call"
