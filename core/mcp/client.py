"""MCP client over Streamable HTTP, for both protocol eras.

* **Legacy** (2024-11-05 … 2025-11-25): `initialize` → `Mcp-Session-Id` → `notifications/initialized`,
  then every request carries the session id and `MCP-Protocol-Version`. Responses come as JSON or as
  an SSE stream; a stream that ends early is resumed by GET with `Last-Event-ID` after the server's
  `retry:` delay; requests the server sends on a stream (ping, elicitation, sampling, roots) are
  answered by POST. A 404 on a session means the server forgot it: one shared re-initialization, then
  the failed request is retried once (it never ran). `close()` sends DELETE.
* **Modern** (2026-07-28): stateless. Every request carries `_meta` (protocol version, client
  capabilities, client info) plus the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers; no
  session, no GET, no DELETE. `server/discover` replaces `initialize`.

`era="auto"` probes `server/discover` first (like the official SDK) and falls back to `initialize`
on anything that is not positive evidence of a modern server; the verdict is cached per origin so a
second connection does not probe again.

The hot path is plain dicts and stdlib `json`; one pooled `httpx2.AsyncClient` (core.net) is shared
by every client in the process. Every failure is a `core.errors.SwitchboardError` subclass whose
message never contains a credential, session id or response body.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

import httpx2

from core.errors import (
    AuthRequired,
    ConfigurationError,
    ConnectError,
    HttpStatusError,
    InsufficientScope,
    InvalidUrlError,
    McpError,
    ProtocolError,
    RequestTimeout,
    ResponseTooLarge,
    SessionExpired,
    SwitchboardError,
    TransportError,
    UnsupportedProtocolVersion,
)
from core.mcp import jsonrpc
from core.mcp.auth import AuthChallenge, CredentialProvider
from core.mcp.jsonrpc import Message, decode_message, encode_notification, encode_request
from core.mcp.sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, SseDecoder
from core.rfc9110 import parse_www_authenticate

__all__ = [
    "HANDSHAKE_PROTOCOL_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "LATEST_MODERN_VERSION",
    "MODERN_PROTOCOL_VERSIONS",
    "ClientLimits",
    "ConnectionInfo",
    "McpClient",
    "PaginationError",
    "ServerRequestHandler",
    "ToolResult",
    "clear_era_cache",
]

logger = logging.getLogger(__name__)

HANDSHAKE_PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
MODERN_PROTOCOL_VERSIONS: Final = ("2026-07-28",)
LATEST_HANDSHAKE_VERSION: Final = HANDSHAKE_PROTOCOL_VERSIONS[-1]
LATEST_MODERN_VERSION: Final = MODERN_PROTOCOL_VERSIONS[-1]

Era = Literal["legacy", "modern"]
#: `async handler(method, params) -> result dict` for requests the server sends us (elicitation,
#: sampling, roots). Return None or raise `McpError(code=-32601)` for methods it does not handle.
ServerRequestHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]

_META_PROTOCOL_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
_META_CLIENT_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
_META_CLIENT_INFO: Final = "io.modelcontextprotocol/clientInfo"
_META_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"
_NAME_BEARING_METHODS: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_ACCEPT_BOTH: Final = "application/json, text/event-stream"
_DEFAULT_RETRY_MS: Final = 1000  # resumption delay when the server never sent `retry:`
_MAX_RESUMPTIONS: Final = 5  # consecutive resumptions without a single event before giving up
_MAX_ERROR_BODY: Final = 64 * 1024  # how much of a non-2xx body we read to find a JSON-RPC error
_MAX_SESSION_ID_LENGTH: Final = 1024
_MAX_INPUT_ROUNDS: Final = 10
_DRAIN_SECONDS: Final = 2.0  # how long a finished SSE response may take to end before we drop it
_DRAIN_BYTES: Final = 64 * 1024
_SESSION_ID_RE = re.compile(r"[\x21-\x7e]+")
_HEADER_SAFE_RE = re.compile(r"[\x20-\x7e]*")
_B64_SENTINEL_RE = re.compile(r"=\?base64\?.*\?=")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

_era_cache: dict[str, Era] = {}


def clear_era_cache() -> None:
    """Forget which protocol era each origin speaks (the next connection probes again)."""
    _era_cache.clear()


class PaginationError(ProtocolError):
    """A list method's pagination did not terminate: a repeated cursor or too many pages."""


@dataclass(frozen=True)
class ClientLimits:
    """Size caps on what a server may send; exceeding one raises `ResponseTooLarge`."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # one SSE line
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES  # one SSE event's data
    max_response_bytes: int = 16 << 20  # one HTTP response body / one request's SSE stream
    max_pages: int = 1000  # pages of one list call


@dataclass(frozen=True)
class ConnectionInfo:
    """What `connect()` learned about the server."""

    era: Era
    protocol_version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None = None


@dataclass(frozen=True)
class ToolResult:
    """The result of `tools/call`; `raw` is the full result object as the server sent it."""

    content: list[dict[str, Any]]
    structured_content: Any
    is_error: bool
    raw: dict[str, Any] = field(repr=False)


class _SessionLost(Exception):
    pass


class _StreamBroken(Exception):
    pass


class _SessionRenewed(Exception):
    """The session was re-created while a request that must not be replayed was in flight."""


class _CallState:
    __slots__ = ("request_id",)

    def __init__(self) -> None:
        self.request_id: int | None = None


_NO_REPLY: Final = object()


class McpClient:
    """An MCP client for one server URL. Safe to share between concurrent tasks of one event loop.

    ```
    async with McpClient("https://mcp.example.com/mcp", auth=StaticHeader.bearer(token)) as mcp:
        tools = await mcp.list_tools()
        result = await mcp.call_tool("search", {"query": "x"})
    ```
    """

    def __init__(
        self,
        url: str,
        *,
        http: httpx2.AsyncClient | None = None,
        auth: CredentialProvider | None = None,
        timeout: float = 30.0,
        limits: ClientLimits = ClientLimits(),
        era: Literal["auto", "legacy", "modern"] = "auto",
        on_server_request: ServerRequestHandler | None = None,
        client_info: Mapping[str, Any] | None = None,
        protocol_version: str | None = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> None:
        self._url, self._origin, self._display_url = _check_url(url)
        try:
            self._request_url = httpx2.URL(url)  # parsed once, not per request
        except httpx2.InvalidURL:
            raise InvalidUrlError(f"invalid URL: {self._display_url}") from None
        if era not in ("auto", "legacy", "modern"):
            raise ConfigurationError(f"era must be 'auto', 'legacy' or 'modern', not {era!r}")
        if protocol_version is not None:
            if protocol_version in MODERN_PROTOCOL_VERSIONS:
                if era == "legacy":
                    raise ConfigurationError(f"protocol version {protocol_version} is not a legacy version")
                era = "modern"
            elif protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
                if era == "modern":
                    raise ConfigurationError(f"protocol version {protocol_version} is not a modern version")
                era = "legacy"
            else:
                raise ConfigurationError(
                    f"unknown MCP protocol version {protocol_version!r}",
                    hint=f"use one of {', '.join(HANDSHAKE_PROTOCOL_VERSIONS + MODERN_PROTOCOL_VERSIONS)}",
                )
        if not timeout or timeout <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        self._own_http = http is None  # None: the shared pool of core.net, looked up per event loop
        self._auth = auth
        self._timeout = float(timeout)
        self._limits = limits
        self._era_preference = era
        self._pinned_version = protocol_version
        self._on_server_request = on_server_request
        self._client_info = dict(client_info) if client_info else {"name": "switchboard", "version": "0.1.0"}
        if capabilities is not None:
            self._capabilities = dict(capabilities)
        elif on_server_request is not None:
            self._capabilities = {"elicitation": {}, "sampling": {}, "roots": {"listChanged": False}}
        else:
            self._capabilities = {}

        self._http: httpx2.AsyncClient | None = http
        self._era: Era | None = None
        self._version: str | None = None
        self._session_id: str | None = None
        self._session_generation = 0
        self._info: ConnectionInfo | None = None
        self._connect_lock = asyncio.Lock()
        self._connect_attempts = 0  # connect attempts that ended, and how the last one failed (or None)
        self._connect_failure: SwitchboardError | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listen_task: asyncio.Task[None] | None = None
        self._closed = False
        self._post_headers: dict[str, str] = {}
        self._modern_meta: dict[str, Any] = {}
        self._tool_param_headers: dict[str, dict[tuple[str, ...], str]] = {}
        self._timeouts: dict[float, httpx2.Timeout] = {}

    def __repr__(self) -> str:
        state = "closed" if self._closed else (self._era or "not connected")
        return f"<McpClient {self._display_url} {state}>"

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- public API -----------------------------------------------------------------------------

    @property
    def info(self) -> ConnectionInfo | None:
        """What `connect()` returned, or None before it has run."""
        return self._info

    async def connect(self) -> ConnectionInfo:
        """Negotiate the protocol (once; concurrent callers share it, failure included) and return
        what was learned. A call after a failed attempt tries again."""
        if self._closed:
            raise TransportError(f"the client for {self._display_url} is closed")
        info = self._info
        if info is not None:
            return info
        waited_for = self._connect_attempts
        async with self._connect_lock:
            if self._info is None:
                if self._connect_attempts != waited_for and self._connect_failure is not None:
                    # The attempt we waited for failed: share its failure rather than queueing one
                    # more attempt (and one more timeout) per waiting caller.
                    raise self._connect_failure
                self._connect_failure = None
                try:
                    await self._connect_in_time()
                except SwitchboardError as exc:
                    self._connect_failure = exc
                    raise
                finally:
                    self._connect_attempts += 1
            assert self._info is not None
            return self._info

    async def _connect_in_time(self) -> None:
        try:
            async with asyncio.timeout(self._timeout * 2):
                await self._connect_locked()
        except TimeoutError:
            raise RequestTimeout(
                f"connecting to {self._display_url} took longer than {self._timeout * 2:g}s"
            ) from None
        except SwitchboardError:
            raise
        except Exception as exc:
            raise _unexpected(exc, self._display_url) from exc

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send any JSON-RPC request and return its `result` object."""
        if self._info is None:
            await self.connect()
        return await self._call(method, params, timeout)

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool definition (all pages), exactly as the server sent them."""
        tools = await self._list_all("tools/list", "tools")
        if self._era == "modern":
            tools = self._absorb_tool_annotations(tools)
        return tools

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> ToolResult:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("tool name must be a non-empty string")
        params: dict[str, Any] = {"name": name, "arguments": dict(arguments) if arguments else {}}
        result = await self.request("tools/call", params, timeout=timeout)
        content = result.get("content", [])
        if not isinstance(content, list):
            raise ProtocolError(f"tools/call {name}: result content is not a list")
        is_error = result.get("isError", False)
        return ToolResult(
            content=content,
            structured_content=result.get("structuredContent"),
            is_error=is_error is True,
            raw=result,
        )

    async def list_resources(self) -> list[dict[str, Any]]:
        return await self._list_all("resources/list", "resources")

    async def list_prompts(self) -> list[dict[str, Any]]:
        return await self._list_all("prompts/list", "prompts")

    async def close(self) -> None:
        """End the session (DELETE in the legacy era) and stop background work. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(TransportError(f"the client for {self._display_url} was closed"))
        self._pending.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._era == "legacy" and self._session_id is not None:
            await self._terminate_session()
        self._session_id = None

    # --- connection -----------------------------------------------------------------------------

    def _client(self) -> httpx2.AsyncClient:
        client = self._http
        if client is None or (self._own_http and client.is_closed):
            from core.net.client import shared_http_client

            client = self._http = shared_http_client()
        return client

    async def _connect_locked(self) -> None:
        preference = self._era_preference
        era: str = preference
        if preference == "auto":
            era = _era_cache.get(self._origin, "auto")
        if era in ("auto", "modern") and await self._discover(strict=preference == "modern"):
            _era_cache[self._origin] = "modern"
            return
        try:
            await self._initialize()
        except McpError as exc:
            # A modern-only server can answer `initialize` with -32022 naming its versions; that is
            # positive modern evidence (the cache said legacy, or we skipped the probe).
            if (
                exc.code == jsonrpc.UNSUPPORTED_PROTOCOL_VERSION
                and preference == "auto"
                and era == "legacy"
                and await self._discover(strict=True)
            ):
                _era_cache[self._origin] = "modern"
                return
            raise
        if preference == "auto":
            _era_cache[self._origin] = "legacy"

    async def _discover(self, *, strict: bool) -> bool:
        """Probe `server/discover`. True: adopted the modern era. False: fall back to initialize.

        Anything that is not positive evidence of a modern server means legacy (a denylist, like
        the SDK): HTTP 4xx/5xx, JSON-RPC errors, a result without a modern version. Network errors,
        timeouts and authorization failures propagate; they say nothing about the era.
        """
        version = (
            self._pinned_version
            if self._pinned_version in MODERN_PROTOCOL_VERSIONS
            else LATEST_MODERN_VERSION
        )
        for _attempt in range(2):
            self._adopt_modern_headers(version)
            self._era = "modern"
            self._version = version
            try:
                result = await self._call("server/discover", None, min(self._timeout, 10.0), internal=True)
            except McpError as exc:
                self._era = None
                if exc.code in (jsonrpc.HEADER_MISMATCH, jsonrpc.MISSING_REQUIRED_CLIENT_CAPABILITY):
                    # A recognized modern error: the server is modern, so falling back would be wrong.
                    if exc.code == jsonrpc.MISSING_REQUIRED_CLIENT_CAPABILITY and exc.hint is None:
                        exc.hint = (
                            "the server requires a client capability we do not offer (see the error data)"
                        )
                    raise
                if exc.code == jsonrpc.UNSUPPORTED_PROTOCOL_VERSION:
                    supported = _supported_versions(exc.data)
                    mutual = [v for v in MODERN_PROTOCOL_VERSIONS if v in supported]
                    if mutual and mutual[-1] != version:
                        version = mutual[-1]
                        continue
                    if strict or (supported and not any(v in HANDSHAKE_PROTOCOL_VERSIONS for v in supported)):
                        raise UnsupportedProtocolVersion(
                            f"{self._display_url} supports none of our protocol versions",
                            hint=f"server supports {', '.join(supported) or 'nothing it named'}",
                        ) from None
                if strict:
                    raise
                return False
            except (HttpStatusError, ProtocolError) as exc:
                self._era = None
                if strict:
                    hint = (
                        exc.hint
                        or "this server may only speak the legacy (initialize) protocol; use era='auto'"
                    )
                    raise type(exc)(exc.message, hint=hint, **_status_kw(exc)) from None
                logger.debug(
                    "server/discover probe on %s: %s; falling back to initialize",
                    self._display_url,
                    exc.message,
                )
                return False
            except BaseException:
                self._era = None
                raise
            supported = result.get("supportedVersions")
            mutual = [v for v in MODERN_PROTOCOL_VERSIONS if isinstance(supported, list) and v in supported]
            if not mutual:
                self._era = None
                if strict:
                    raise UnsupportedProtocolVersion(
                        f"{self._display_url} answered server/discover without a modern protocol version"
                    )
                return False
            if mutual[-1] != version:
                version = mutual[-1]
                self._adopt_modern_headers(version)
                self._version = version
            meta = result.get("_meta")
            server_info = meta.get(_META_SERVER_INFO) if isinstance(meta, dict) else None
            capabilities = result.get("capabilities")
            instructions = result.get("instructions")
            self._info = ConnectionInfo(
                era="modern",
                protocol_version=version,
                server_info=server_info if isinstance(server_info, dict) else {},
                capabilities=capabilities if isinstance(capabilities, dict) else {},
                instructions=instructions if isinstance(instructions, str) else None,
            )
            return True
        return False  # pragma: no cover - the loop always returns or raises

    def _adopt_modern_headers(self, version: str) -> None:
        self._modern_meta = {
            _META_PROTOCOL_VERSION: version,
            _META_CLIENT_CAPABILITIES: self._capabilities,
            _META_CLIENT_INFO: self._client_info,
        }
        self._post_headers = {
            "accept": _ACCEPT_BOTH,
            "content-type": "application/json",
            "mcp-protocol-version": version,
        }

    async def _initialize(self) -> None:
        offered = (
            self._pinned_version
            if self._pinned_version in HANDSHAKE_PROTOCOL_VERSIONS
            else LATEST_HANDSHAKE_VERSION
        )
        self._era = "legacy"
        self._version = None
        self._session_id = None
        # `initialize` is the negotiation itself: no session id, no MCP-Protocol-Version yet.
        self._post_headers = {"accept": _ACCEPT_BOTH, "content-type": "application/json"}
        params = {
            "protocolVersion": offered,
            "capabilities": self._capabilities,
            "clientInfo": self._client_info,
        }
        try:
            result, response_headers = await self._call(
                "initialize", params, self._timeout, internal=True, want_headers=True
            )
        except BaseException:
            self._era = None
            raise
        session_id = response_headers.get("mcp-session-id")
        if session_id is not None:
            if len(session_id) > _MAX_SESSION_ID_LENGTH or not _SESSION_ID_RE.fullmatch(session_id):
                self._era = None
                raise ProtocolError(
                    f"{self._display_url} sent an invalid Mcp-Session-Id",
                    hint="a session id must be visible ASCII (0x21-0x7E); refusing it to prevent header injection",
                )
            self._session_id = session_id
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            if self._session_id is not None:
                await self._terminate_session()
            self._era = None
            self._session_id = None
            raise UnsupportedProtocolVersion(
                f"{self._display_url} negotiated an unsupported protocol version",
                hint=f"we speak {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)} (and {LATEST_MODERN_VERSION} via server/discover)",
            )
        self._version = version
        headers = {
            "accept": _ACCEPT_BOTH,
            "content-type": "application/json",
            "mcp-protocol-version": version,
        }
        if self._session_id is not None:
            headers["mcp-session-id"] = self._session_id
        self._post_headers = headers
        self._session_generation += 1
        await self._notify("notifications/initialized", None)
        server_info = result.get("serverInfo")
        capabilities = result.get("capabilities")
        instructions = result.get("instructions")
        self._info = ConnectionInfo(
            era="legacy",
            protocol_version=version,
            server_info=server_info if isinstance(server_info, dict) else {},
            capabilities=capabilities if isinstance(capabilities, dict) else {},
            instructions=instructions if isinstance(instructions, str) else None,
        )
        if self._on_server_request is not None and self._session_id is not None:
            self._listen_task = self._spawn(self._listen(self._session_generation))

    async def _recover_session(self, generation_seen: int) -> None:
        """The server forgot our session: re-initialize once, however many callers noticed."""
        async with self._connect_lock:
            if self._closed:
                raise TransportError(f"the client for {self._display_url} was closed")
            if self._session_generation != generation_seen:
                return  # another caller already re-initialized
            logger.info("session on %s expired; re-initializing", self._display_url)
            if self._listen_task is not None:
                self._listen_task.cancel()
                self._listen_task = None
            self._info = None
            await self._initialize()

    async def _terminate_session(self) -> None:
        headers = {"mcp-protocol-version": self._version or LATEST_HANDSHAKE_VERSION}
        if self._session_id is not None:
            headers["mcp-session-id"] = self._session_id
        try:
            async with asyncio.timeout(min(self._timeout, 5.0)):
                response = await self._send("DELETE", headers, None, None, self._timeout)
                await _release(response)
            if response.status_code not in (200, 202, 204, 404, 405):
                logger.debug("DELETE session on %s answered %s", self._display_url, response.status_code)
        except (SwitchboardError, TimeoutError) as exc:
            logger.debug("DELETE session on %s failed: %s", self._display_url, type(exc).__name__)

    # --- requests -------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        params: dict[str, Any] | None,
        timeout: float | None,
        *,
        internal: bool = False,
        want_headers: bool = False,
        replay_on_new_session: bool = True,
    ) -> Any:
        if self._closed:
            raise TransportError(f"the client for {self._display_url} is closed")
        seconds = self._timeout if timeout is None else timeout
        if seconds <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        state = _CallState()
        try:
            async with asyncio.timeout(seconds):
                return await self._call_with_retries(
                    method, params, seconds, state, internal, want_headers, replay_on_new_session
                )
        except asyncio.CancelledError:
            # The caller gave up (task cancelled). Legacy servers learn it from notifications/cancelled;
            # in the modern era closing the response stream (done by unwinding) is the cancellation.
            self._announce_cancellation(method, state, "cancelled by the client")
            raise
        except TimeoutError:
            self._announce_cancellation(method, state, "timeout")
            raise RequestTimeout(
                f"{method} on {self._display_url} got no answer within {seconds:g}s",
                hint="raise the timeout for slow tools",
            ) from None
        except (SwitchboardError, _SessionRenewed):
            raise
        except Exception as exc:
            raise _unexpected(exc, self._display_url) from exc

    def _announce_cancellation(self, method: str, state: _CallState, reason: str) -> None:
        if (
            self._era == "legacy"
            and state.request_id is not None
            and method != "initialize"
            and not self._closed
        ):
            self._spawn(
                self._notify_quietly(
                    "notifications/cancelled", {"requestId": state.request_id, "reason": reason}
                )
            )

    async def _call_with_retries(
        self,
        method: str,
        params: dict[str, Any] | None,
        seconds: float,
        state: _CallState,
        internal: bool,
        want_headers: bool,
        replay_on_new_session: bool,
    ) -> Any:
        session_retry = header_retry = stream_retry = True
        input_rounds = 0
        while True:
            generation = self._session_generation
            request_id = next(self._ids)
            state.request_id = request_id
            try:
                result, headers = await self._roundtrip(method, params, request_id, seconds)
            except _SessionLost:
                if not session_retry or internal:
                    raise SessionExpired(
                        f"{self._display_url} forgot our session twice in a row",
                        hint="the server may be restarting; try again later",
                    ) from None
                session_retry = False
                await self._recover_session(generation)
                if not replay_on_new_session:
                    raise _SessionRenewed() from None
                continue
            except _StreamBroken:
                # Modern era: a broken stream loses the request; it MUST be re-issued with a new id.
                if not stream_retry:
                    raise TransportError(
                        f"{method} on {self._display_url}: the response stream broke twice"
                    ) from None
                stream_retry = False
                continue
            except McpError as exc:
                if (
                    exc.code == jsonrpc.HEADER_MISMATCH
                    and method == "tools/call"
                    and header_retry
                    and self._era == "modern"
                ):
                    header_retry = False
                    await self.list_tools()  # refresh the x-mcp-header annotations, then retry
                    continue
                raise
            if self._era == "modern" and not internal:
                result_type = result.get("resultType", "complete")
                if result_type == "input_required":
                    input_rounds += 1
                    if input_rounds > _MAX_INPUT_ROUNDS:
                        raise ProtocolError(
                            f"{method}: the server asked for input more than {_MAX_INPUT_ROUNDS} times"
                        )
                    params = await self._fulfil_input_requests(params, result)
                    continue
                if result_type != "complete":
                    raise ProtocolError(f"{method}: unknown resultType {str(result_type)[:40]!r}")
            return (result, headers) if want_headers else result

    def _frame(
        self, method: str, params: dict[str, Any] | None, request_id: int
    ) -> tuple[bytes, dict[str, str]]:
        if self._era == "modern":
            headers = dict(self._post_headers)
            body_params = dict(params) if params else {}
            user_meta = body_params.get("_meta")
            body_params["_meta"] = (
                {**user_meta, **self._modern_meta} if isinstance(user_meta, dict) else self._modern_meta
            )
            headers["mcp-method"] = method
            name_key = _NAME_BEARING_METHODS.get(method)
            if name_key is not None:
                name = body_params.get(name_key)
                if isinstance(name, str):
                    headers["mcp-name"] = encode_header_value(name)
                    if method == "tools/call":
                        header_map = self._tool_param_headers.get(name)
                        if header_map:
                            arguments = body_params.get("arguments")
                            headers.update(
                                _param_headers(header_map, arguments if isinstance(arguments, dict) else {})
                            )
            return encode_request(request_id, method, body_params), headers
        # Legacy: the shared header dict is replaced, never mutated, when the session changes.
        return encode_request(request_id, method, params), self._post_headers

    async def _roundtrip(
        self, method: str, params: dict[str, Any] | None, request_id: int, seconds: float
    ) -> tuple[dict[str, Any], httpx2.Headers]:
        body, headers = self._frame(method, params, request_id)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        self._pending[request_id] = future
        try:
            response = await self._send("POST", headers, body, method, seconds)
            leftover: AsyncIterator[bytes] | None = None
            try:
                status = response.status_code
                if status == 200 or status == 201:
                    media_type = _media_type(response)
                    if media_type == "application/json":
                        data = await self._read_body(response, self._limits.max_response_bytes)
                        message = decode_message(data)
                        return self._result_of(message, request_id, method), response.headers
                    if media_type == "text/event-stream":
                        result, leftover = await self._read_sse_reply(
                            response, request_id, method, future, seconds
                        )
                        return result, response.headers
                    raise _wrong_content_type(media_type, self._display_url, method)
                if status == 202:
                    raise ProtocolError(
                        f"{method}: {self._display_url} answered a request with 202 Accepted and no response"
                    )
                await self._raise_for_status(response, method, sent_session="mcp-session-id" in headers)
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                if leftover is not None:
                    # The server ends the stream right after our response; reading that end in the
                    # background lets the connection go back to the pool instead of being dropped.
                    _spawn_detached(_drain_and_close(response, leftover))
                else:
                    await response.aclose()
        finally:
            self._pending.pop(request_id, None)

    def _result_of(self, message: Message, request_id: int, method: str) -> dict[str, Any]:
        if message.kind == Message.ERROR and message.id is None:
            # An error the server could not tie to our request (e.g. rejected before parsing the id).
            raise jsonrpc.error_from_object(message.raw["error"], method=method)
        if message.id != request_id or type(message.id) is not type(request_id):
            raise ProtocolError(f"{method}: the response does not answer our request (wrong or missing id)")
        if message.kind == Message.ERROR:
            raise jsonrpc.error_from_object(message.raw["error"], method=method)
        if message.kind != Message.RESPONSE:
            raise ProtocolError(f"{method}: expected a JSON-RPC response, got a {message.kind}")
        result = message.raw["result"]
        if not isinstance(result, dict):
            raise ProtocolError(f"{method}: the JSON-RPC result is not an object")
        return result

    async def _read_sse_reply(
        self,
        response: httpx2.Response,
        request_id: int,
        method: str,
        future: asyncio.Future[Message],
        seconds: float,
    ) -> tuple[dict[str, Any], AsyncIterator[bytes] | None]:
        """Our result from an SSE response, resuming by GET when the stream ends early. Also returns
        the unread rest of the original stream when the result came on it (for draining)."""
        decoder = self._decoder()
        idle_resumptions = 0
        opened: httpx2.Response | None = None  # a resumption GET we must close
        chunks = response.aiter_bytes()
        try:
            while True:
                outcome, progressed = await self._consume_sse(chunks, decoder, request_id, future)
                if outcome is not _NO_REPLY:
                    return self._result_of(outcome, request_id, method), (chunks if opened is None else None)
                # The stream ended without our response.
                if self._era == "modern":
                    raise _StreamBroken()
                if not decoder.last_event_id:
                    raise TransportError(
                        f"{method}: {self._display_url} closed the response stream without answering",
                        hint="the server sent no event id, so the stream cannot be resumed",
                    )
                idle_resumptions = 1 if progressed else idle_resumptions + 1
                if idle_resumptions > _MAX_RESUMPTIONS:
                    raise TransportError(
                        f"{method}: gave up resuming the response stream from {self._display_url}"
                    )
                delay = (decoder.retry_ms or _DEFAULT_RETRY_MS) / 1000
                # Wait the server's retry delay (SEP-1699), unless the answer arrives on another stream.
                done, _ = await asyncio.wait({future}, timeout=delay)
                if done:
                    return self._result_of(future.result(), request_id, method), None
                if opened is not None:
                    await opened.aclose()
                    opened = None
                headers = self._get_headers()
                headers["last-event-id"] = decoder.last_event_id
                opened = response = await self._send("GET", headers, None, method, seconds)
                if response.status_code != 200 or _media_type(response) != "text/event-stream":
                    if response.status_code == 404 and self._session_id is not None:
                        raise _SessionLost()
                    raise TransportError(
                        f"{method}: could not resume the response stream from {self._display_url} "
                        f"(GET answered {response.status_code})"
                    )
                decoder = self._decoder(last_event_id=decoder.last_event_id, retry_ms=decoder.retry_ms)
                chunks = response.aiter_bytes()
        finally:
            if opened is not None:
                await opened.aclose()

    def _decoder(self, *, last_event_id: str = "", retry_ms: int | None = None) -> SseDecoder:
        decoder = SseDecoder(
            max_line_bytes=self._limits.max_line_bytes,
            max_event_bytes=self._limits.max_event_bytes,
            last_event_id=last_event_id,
        )
        decoder.retry_ms = retry_ms
        return decoder

    async def _consume_sse(
        self,
        chunks: AsyncIterator[bytes],
        decoder: SseDecoder,
        request_id: int | None,
        future: asyncio.Future[Message] | None,
    ) -> tuple[Any, bool]:
        """Read one SSE stream until our response (returned), or its end (`_NO_REPLY`); the flag
        says whether any event arrived (a resumption that makes progress resets the retry count)."""
        budget = self._limits.max_response_bytes if request_id is not None else None
        total = 0
        progressed = False
        dropped = 0
        try:
            async for chunk in chunks:
                if budget is not None:
                    total += len(chunk)
                    if total > budget:
                        raise ResponseTooLarge(
                            f"the response stream from {self._display_url} exceeded {budget} bytes"
                        )
                for event in decoder.feed(chunk):
                    progressed = True
                    if event.error is not None:
                        dropped += 1
                        _log_dropped(
                            dropped, "dropping an SSE event from %s: %s", self._display_url, event.error
                        )
                        continue
                    if not event.data or event.event != "message":
                        continue  # priming event (resumption point only) or an event type MCP does not use
                    try:
                        message = decode_message(event.data)
                    except ProtocolError as exc:
                        dropped += 1
                        _log_dropped(
                            dropped,
                            "dropping a malformed message from %s: %s",
                            self._display_url,
                            exc.message,
                        )
                        continue
                    if message.kind in (Message.RESPONSE, Message.ERROR):
                        if (
                            request_id is not None
                            and message.id == request_id
                            and type(message.id) is type(request_id)
                        ):
                            return message, True
                        self._route_response(message)
                    elif message.kind == Message.REQUEST:
                        self._handle_server_request(message)
                    # notifications (progress, logging, list_changed) need no action here
                if future is not None and future.done():
                    return future.result(), True
        except httpx2.TimeoutException:
            raise RequestTimeout(f"the stream from {self._display_url} went silent") from None
        except (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.StreamError):
            pass  # a dropped connection is a disconnect: resumable like a clean end of stream
        decoder.close()
        if future is not None and future.done():
            return future.result(), progressed
        return _NO_REPLY, progressed

    def _route_response(self, message: Message) -> None:
        future = self._pending.get(message.id) if message.id is not None else None
        if future is None or future.done():
            logger.debug("ignoring a response for an unknown request id from %s", self._display_url)
            return
        future.set_result(message)

    # --- server-initiated requests --------------------------------------------------------------

    def _handle_server_request(self, message: Message) -> None:
        if self._era == "modern":
            # 2026-07-28 servers MUST NOT send requests on a stream (they return input_required).
            logger.warning(
                "ignoring a %s request %s sent on a stream (not allowed in %s)",
                message.method,
                self._display_url,
                self._version,
            )
            return
        self._spawn(self._answer_server_request(message))

    async def _answer_server_request(self, message: Message) -> None:
        method = message.method or ""
        try:
            result = await self._serve(method, message.params)
            body = jsonrpc.encode_response(message.id, result)  # type: ignore[arg-type]
        except McpError as exc:
            body = jsonrpc.encode_error(message.id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the caller's hook may raise anything; the server gets -32603
            logger.warning("the server-request handler failed on %s: %s", method, type(exc).__name__)
            body = jsonrpc.encode_error(
                message.id, jsonrpc.INTERNAL_ERROR, "client failed to handle the request"
            )
        await self._post_quietly(body, None)

    async def _serve(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "ping":
            return {}
        result = None
        if self._on_server_request is not None:
            result = await self._on_server_request(method, params)
        if result is None:
            raise McpError(f"method not found: {method}", code=jsonrpc.METHOD_NOT_FOUND)
        if not isinstance(result, dict):
            raise McpError("client handler returned a non-object result", code=jsonrpc.INTERNAL_ERROR)
        return result

    async def _fulfil_input_requests(
        self, params: dict[str, Any] | None, result: dict[str, Any]
    ) -> dict[str, Any]:
        """Modern era multi-round-trip: answer the server's embedded requests, then re-send."""
        requests = result.get("inputRequests")
        responses: dict[str, Any] = {}
        if isinstance(requests, dict):
            for key, request in requests.items():
                if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                    raise ProtocolError("input_required result with a malformed input request")
                params_of = request.get("params")
                responses[key] = await self._serve(
                    request["method"], params_of if isinstance(params_of, dict) else {}
                )
        else:
            await asyncio.sleep(0.05)
        new_params = dict(params) if params else {}
        new_params["inputResponses"] = responses
        state = result.get("requestState")
        if isinstance(state, str):
            new_params["requestState"] = state
        else:
            new_params.pop("requestState", None)
        return new_params

    # --- the standalone GET stream (legacy) -----------------------------------------------------

    async def _listen(self, generation: int) -> None:
        """Keep the server's GET stream open for its requests and notifications (legacy era)."""
        last_event_id = ""
        retry_ms: int | None = None
        failures = 0
        while not self._closed and generation == self._session_generation and failures < _MAX_RESUMPTIONS:
            headers = self._get_headers()
            if last_event_id:
                headers["last-event-id"] = last_event_id
            try:
                response = await self._send("GET", headers, None, None, None)
            except SwitchboardError as exc:
                logger.debug("GET stream on %s failed: %s", self._display_url, type(exc).__name__)
                failures += 1
                await asyncio.sleep((retry_ms or _DEFAULT_RETRY_MS) / 1000)
                continue
            try:
                if response.status_code != 200 or _media_type(response) != "text/event-stream":
                    logger.debug("%s offers no GET stream (%s)", self._display_url, response.status_code)
                    return  # 405: the server offers no stream; never ask again for this session
                decoder = self._decoder(last_event_id=last_event_id, retry_ms=retry_ms)
                progressed = False
                try:
                    _, progressed = await self._consume_sse(response.aiter_bytes(), decoder, None, None)
                except SwitchboardError as exc:
                    logger.debug("GET stream on %s failed: %s", self._display_url, type(exc).__name__)
                last_event_id, retry_ms = decoder.last_event_id, decoder.retry_ms
                failures = 0 if progressed else failures + 1
            finally:
                await response.aclose()
            await asyncio.sleep((retry_ms or _DEFAULT_RETRY_MS) / 1000)

    # --- HTTP -----------------------------------------------------------------------------------

    def _get_headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if self._version is not None:
            headers["mcp-protocol-version"] = self._version
        if self._session_id is not None:
            headers["mcp-session-id"] = self._session_id
        return headers

    def _httpx_timeout(self, seconds: float | None) -> httpx2.Timeout:
        key = -1.0 if seconds is None else seconds
        timeout = self._timeouts.get(key)
        if timeout is None:
            if seconds is None:  # long-lived GET stream: only connecting is bounded
                timeout = httpx2.Timeout(None, connect=min(self._timeout, 10.0))
            else:
                timeout = httpx2.Timeout(seconds, connect=min(seconds, 10.0))
            self._timeouts[key] = timeout
        return timeout

    async def _send(
        self,
        verb: str,
        headers: dict[str, str],
        body: bytes | None,
        method: str | None,
        seconds: float | None,
    ) -> httpx2.Response:
        """Send one HTTP request with the credential's headers; on 401/403 let the provider react
        and retry once. Returns the open (streaming) response; the caller closes it."""
        client = self._client()
        timeout = self._httpx_timeout(seconds)
        for attempt in (0, 1):
            if self._auth is not None:
                request_headers = {**headers, **(await self._auth.auth_headers())}
            else:
                request_headers = headers
            request = client.build_request(
                verb, self._request_url, content=body, headers=request_headers, timeout=timeout
            )
            try:
                response = await client.send(request, stream=True)
            except httpx2.ConnectTimeout:
                raise ConnectError(f"timed out connecting to {self._origin}") from None
            except httpx2.ConnectError as exc:
                raise ConnectError(f"cannot connect to {self._origin}", hint=_connect_hint(exc)) from None
            except httpx2.TimeoutException:
                raise RequestTimeout(f"{method or verb} on {self._display_url} timed out") from None
            except (httpx2.InvalidURL, httpx2.UnsupportedProtocol):
                raise InvalidUrlError(f"cannot send to {self._display_url}") from None
            except httpx2.HTTPError as exc:
                raise TransportError(
                    f"{method or verb} on {self._display_url} failed: {type(exc).__name__}"
                ) from None
            status = response.status_code
            if status != 401 and status != 403:
                return response
            challenge = AuthChallenge(
                status=status,
                challenges=parse_www_authenticate(response.headers.get_list("www-authenticate")),
                url=self._url,
                method=method or "",
            )
            await _release(response)
            if self._auth is not None and attempt == 0 and await self._auth.handle_challenge(challenge):
                continue
            raise _auth_error(challenge, self._display_url)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read_body(self, response: httpx2.Response, limit: int) -> bytes:
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ResponseTooLarge(f"the response from {self._display_url} is larger than {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > limit:
                    raise ResponseTooLarge(
                        f"the response from {self._display_url} is larger than {limit} bytes"
                    )
                chunks.append(chunk)
        except httpx2.TimeoutException:
            raise RequestTimeout(f"reading the response from {self._display_url} timed out") from None
        except httpx2.HTTPError as exc:
            raise TransportError(
                f"reading the response from {self._display_url} failed: {type(exc).__name__}"
            ) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _raise_for_status(self, response: httpx2.Response, method: str, *, sent_session: bool) -> None:
        status = response.status_code
        error: dict[str, Any] | None = None
        media_type = _media_type(response)
        if media_type == "application/json":
            try:
                message = decode_message(await self._read_body(response, _MAX_ERROR_BODY))
                if message.kind == Message.ERROR:
                    error = message.raw["error"]
            except (ProtocolError, ResponseTooLarge, TransportError):
                pass
        if (
            status == 404
            and sent_session
            and self._era == "legacy"
            and (error is None or error.get("code") != jsonrpc.METHOD_NOT_FOUND)
        ):
            raise _SessionLost()
        if error is not None:
            exc = jsonrpc.error_from_object(error, method=method)
            if status == 400 and not sent_session and "session" in exc.message.lower():
                exc.hint = (
                    "this server needs the initialize handshake (Mcp-Session-Id); use era='auto' or 'legacy'"
                )
            raise exc
        location = response.headers.get("location") if 300 <= status < 400 else None
        raise HttpStatusError(
            f"{method}: {self._display_url} answered HTTP {status}",
            status=status,
            hint=_status_hint(status, media_type, location),
        )

    async def _notify(self, method: str, params: dict[str, Any] | None) -> None:
        """Send a notification (legacy only: the modern HTTP wire has no client notifications)."""
        if self._era != "legacy":
            return
        response = await self._send(
            "POST", dict(self._post_headers), encode_notification(method, params), method, self._timeout
        )
        await _release(response)
        if response.status_code >= 400:
            logger.warning("%s on %s answered HTTP %s", method, self._display_url, response.status_code)

    async def _notify_quietly(self, method: str, params: dict[str, Any] | None) -> None:
        try:
            await self._notify(method, params)
        except SwitchboardError as exc:
            logger.debug("%s on %s failed: %s", method, self._display_url, type(exc).__name__)

    async def _post_quietly(self, body: bytes, method: str | None) -> None:
        try:
            response = await self._send("POST", dict(self._post_headers), body, method, self._timeout)
            await _release(response)
            if response.status_code >= 400:
                logger.warning("answering the server on %s: HTTP %s", self._display_url, response.status_code)
        except SwitchboardError as exc:
            logger.warning("answering the server on %s failed: %s", self._display_url, type(exc).__name__)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- pagination and tools -------------------------------------------------------------------

    async def _list_all(self, method: str, key: str) -> list[dict[str, Any]]:
        if self._info is None:
            await self.connect()
        for _restart in range(3):
            generation = self._session_generation
            items: list[dict[str, Any]] = []
            seen: set[str] = set()
            cursor: str | None = None
            for _page in range(self._limits.max_pages):
                try:
                    result = await self._call(
                        method,
                        {"cursor": cursor} if cursor is not None else None,
                        None,
                        replay_on_new_session=cursor is None,
                    )
                except _SessionRenewed:
                    break  # the session was re-created mid-listing: its cursors are void, start over
                if self._session_generation != generation:
                    break  # another caller re-created the session meanwhile: same thing
                page = result.get(key, [])
                if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
                    raise ProtocolError(f"{method}: {key!r} is not a list of objects")
                items.extend(page)
                next_cursor = result.get("nextCursor")
                if next_cursor is None:
                    return items
                if not isinstance(next_cursor, str):
                    raise ProtocolError(f"{method}: nextCursor is not a string")
                if next_cursor in seen:
                    raise PaginationError(
                        f"{method}: {self._display_url} repeated a pagination cursor",
                        hint="the server's pagination loops; report it to its maintainers",
                    )
                seen.add(next_cursor)
                cursor = next_cursor  # opaque: sent back verbatim, "" included (it is a valid cursor)
            else:
                raise PaginationError(
                    f"{method}: more than {self._limits.max_pages} pages from {self._display_url}"
                )
        raise SessionExpired(f"{method}: the session on {self._display_url} kept expiring during listing")

    def _absorb_tool_annotations(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Modern era `x-mcp-header`: remember which arguments to mirror into `Mcp-Param-*`
        headers, and drop tools whose annotations are invalid (SEP-2243)."""
        kept: list[dict[str, Any]] = []
        header_maps: dict[str, dict[tuple[str, ...], str]] = {}
        for tool in tools:
            name = tool.get("name")
            header_map, problem = _x_mcp_header_map(tool.get("inputSchema"))
            if problem is not None:
                logger.warning("dropping tool %r from %s: %s", name, self._display_url, problem)
                continue
            if header_map and isinstance(name, str):
                header_maps[name] = header_map
            kept.append(tool)
        self._tool_param_headers = header_maps
        return kept


# --- helpers ------------------------------------------------------------------------------------


_detached: set[asyncio.Task[Any]] = set()


def _spawn_detached(coro: Awaitable[Any]) -> None:
    """Bounded background work that must outlive the client (it only returns a connection to the
    pool), so `close()` neither cancels nor waits for it."""
    task = asyncio.ensure_future(coro)
    _detached.add(task)
    task.add_done_callback(_detached.discard)


async def _release(response: httpx2.Response) -> None:
    """Close a response whose body we do not need (202 to a notification, DELETE, a 401/403 before the
    retry). A short body of declared length is read first: closing a response with its body unread
    makes httpcore drop the connection, so the next request would open a new one."""
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= _DRAIN_BYTES:
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                async for _chunk in response.aiter_bytes():
                    pass
        except (TimeoutError, httpx2.HTTPError):
            pass
    await response.aclose()


async def _drain_and_close(response: httpx2.Response, chunks: AsyncIterator[bytes]) -> None:
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            total = 0
            async for chunk in chunks:
                total += len(chunk)
                if total > _DRAIN_BYTES:
                    break  # the server keeps talking: give the connection up instead
    except Exception as exc:  # noqa: BLE001 - best effort: a failure only means the connection is not reused
        logger.debug("draining a finished response stream failed: %s", type(exc).__name__)
    finally:
        await response.aclose()


def _log_dropped(count: int, message: str, *args: Any) -> None:
    # A hostile stream can send millions of bad events: warn once per stream, then only at debug.
    logger.log(logging.WARNING if count == 1 else logging.DEBUG, message, *args)


def _check_url(url: str) -> tuple[str, str, str]:
    if not isinstance(url, str) or not url:
        raise InvalidUrlError("the MCP server URL must be a non-empty string")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise InvalidUrlError(f"not an http(s) URL: {_redact_url(url)}", hint="use https://host/path")
    if parts.fragment:
        raise InvalidUrlError(f"the MCP server URL must not have a fragment: {_redact_url(url)}")
    if parts.username or parts.password:
        raise InvalidUrlError("credentials in the URL are not supported", hint="use a credential provider")
    host = parts.hostname.lower()
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    origin = f"{scheme}://{netloc}"
    return url, origin, _redact_url(url)


def _redact_url(url: str) -> str:
    """The URL without its query (API keys sometimes travel there) and userinfo, for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return f"{parts.scheme}://{netloc}{parts.path}"
    except ValueError:
        return "<invalid URL>"


def _media_type(response: httpx2.Response) -> str:
    value = response.headers.get("content-type")
    if not value:
        return ""
    return value.partition(";")[0].strip().lower()


def _wrong_content_type(media_type: str, where: str, method: str) -> ProtocolError:
    if media_type in ("text/html", "application/xhtml+xml"):
        return ProtocolError(
            f"{method}: {where} answered with an HTML page",
            hint="this URL is not an MCP endpoint; check the path (often /mcp) or a login redirect",
        )
    shown = media_type or "no Content-Type"
    return ProtocolError(
        f"{method}: {where} answered with {shown}",
        hint="an MCP server answers application/json or text/event-stream",
    )


def _status_hint(status: int, media_type: str, location: str | None) -> str | None:
    if status == 406:
        return "the server rejected our Accept header (application/json, text/event-stream); a proxy may be rewriting it"
    if status == 405:
        return "this URL does not accept POST: not a Streamable HTTP MCP endpoint (the old HTTP+SSE transport is not supported)"
    if status == 404:
        return "no MCP endpoint at this path"
    if location is not None:
        return f"redirects are not followed; if {_redact_url(location)} is the server, use that URL"
    if status == 400:
        return "the server rejected the request"
    if status == 429:
        return "the server is rate limiting; try again later"
    if status >= 500:
        return "the server failed; a tools/call is never retried automatically, other requests can be tried again"
    if media_type == "text/html":
        return "this URL is not an MCP endpoint"
    return None


def _connect_hint(exc: Exception) -> str | None:
    text = str(exc).lower()
    if "certificate" in text or "ssl" in text:
        return "TLS certificate verification failed"
    return None


def _auth_error(challenge: AuthChallenge, where: str) -> AuthRequired | InsufficientScope:
    bearer = challenge.bearer()
    error_code = bearer.get("error") if bearer else None
    if challenge.status == 403 and error_code == "insufficient_scope":
        scope = bearer.get("scope") if bearer else None
        scopes = tuple(scope.split()) if scope else ()
        return InsufficientScope(
            f"{where} needs more scopes for this request"
            + (f" ({challenge.method})" if challenge.method else ""),
            scopes=scopes,
            challenges=challenge.challenges,
            hint="re-authorize with the scopes the server named",
        )
    if challenge.status == 403:
        return AuthRequired(
            f"{where} refused access (HTTP 403)",
            challenges=challenge.challenges,
            hint="the credential is valid but not allowed to do this",
        )
    oauth = bearer is not None and bearer.get("resource_metadata") is not None
    return AuthRequired(
        f"{where} requires authorization (HTTP 401)",
        challenges=challenge.challenges,
        hint="connect with OAuth" if oauth else "configure a bearer token or API key for this server",
    )


def _supported_versions(data: Any) -> list[str]:
    if isinstance(data, dict) and isinstance(data.get("supported"), list):
        return [v for v in data["supported"] if isinstance(v, str)]
    return []


def _status_kw(exc: SwitchboardError) -> dict[str, Any]:
    return {"status": exc.status} if isinstance(exc, HttpStatusError) else {}


def _unexpected(exc: Exception, where: str) -> TransportError:
    logger.debug("unexpected error talking to %s", where)
    return TransportError(f"unexpected {type(exc).__name__} talking to {where}")


def encode_header_value(value: str) -> str:
    """An HTTP header value for `value`: verbatim when it is plain printable ASCII without edge
    whitespace, else `=?base64?<utf-8 bytes>?=` (2026-07-28 §Value Encoding)."""
    if _HEADER_SAFE_RE.fullmatch(value) and value == value.strip() and not _B64_SENTINEL_RE.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


_SUBSCHEMA_SINGLE = frozenset(
    {
        "items",
        "contains",
        "unevaluatedItems",
        "additionalProperties",
        "propertyNames",
        "unevaluatedProperties",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    }
)
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP = frozenset({"patternProperties", "dependentSchemas", "$defs", "definitions"})


def _x_mcp_header_map(schema: Any) -> tuple[dict[tuple[str, ...], str], str | None]:
    """Property path -> header token for every `x-mcp-header` annotation, or a reason it is invalid.

    Valid only on integer/string/boolean properties reachable from the root through `properties`
    alone, as an RFC 9110 token, unique case-insensitively. Iterative, so hostile nesting is safe.
    """
    found: dict[tuple[str, ...], str] = {}
    seen: set[str] = set()
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "x-mcp-header" in node:
            token = node["x-mcp-header"]
            if not path:
                return {}, "x-mcp-header outside a plain properties chain"
            if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
                return {}, "x-mcp-header is not an HTTP token"
            if node.get("type") not in ("string", "integer", "boolean"):
                return {}, "x-mcp-header on a property that is not string, integer or boolean"
            if token.lower() in seen:
                return {}, f"duplicate x-mcp-header {token!r}"
            seen.add(token.lower())
            found[path] = token
        for keyword, value in node.items():
            if keyword == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    stack.append(((*path, name) if path is not None else None, sub))
            elif keyword in _SUBSCHEMA_SINGLE:
                stack.append((None, value))
            elif keyword in _SUBSCHEMA_LIST and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif keyword in _SUBSCHEMA_MAP and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())
    return found, None


def _param_headers(header_map: dict[tuple[str, ...], str], arguments: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for path, token in header_map.items():
        value: Any = arguments
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue  # omitted or null: no header
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            rendered = str(value)
        else:
            continue
        headers[f"Mcp-Param-{token}"] = encode_header_value(rendered)
    return headers
