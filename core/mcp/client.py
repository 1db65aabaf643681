"""`McpClient`: an MCP client over Streamable HTTP for both protocol eras, and its call loop.

* **Legacy** (2024-11-05 … 2025-11-25): `initialize` → `Mcp-Session-Id` → `notifications/initialized`,
  then every request carries the session id and `MCP-Protocol-Version`. Responses come as JSON or as
  an SSE stream; a stream that ends early is resumed by GET; requests the server sends (ping,
  elicitation, sampling, roots) are answered by POST. A 404 on a session means the server forgot
  it: one shared re-initialization, then the failed request is retried once (it never ran).
  `close()` sends DELETE.
* **Modern** (2026-07-28): stateless. Every request carries `_meta` and routing headers; no session,
  no GET, no DELETE; `server/discover` replaces `initialize`.

Where the parts live: negotiation and the per-origin era cache in `core.mcp.negotiation`, what
differs between the eras in `core.mcp.session`, HTTP in `core.mcp.http`, event streams and the GET
listener in `core.mcp.streams`, `x-mcp-header` in `core.mcp.headers`, pagination in
`core.mcp.listing`. This module keeps the call loop: one request, with the retries the protocol
allows (a lost session, a broken modern stream, stale header annotations, `input_required`).

The hot path is plain dicts and stdlib `json`; one pooled `httpx2.AsyncClient` (core.net) is shared
by every client in the process. Every failure is a `core.errors.SwitchboardError` subclass whose
message never contains a credential, session id or response body.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal, Self

import httpx2

from core.errors import (
    ConfigurationError,
    McpError,
    ProtocolError,
    RequestTimeout,
    SessionExpired,
    SwitchboardError,
    TransportError,
)
from core.mcp.auth import CredentialProvider
from core.mcp.http import McpHttp, drain_and_close, media_type, spawn_detached, wrong_content_type
from core.mcp.jsonrpc import Message, decode_message, result_of
from core.mcp.listing import SessionRenewed, collect_pages, within_deadline
from core.mcp.negotiation import Offer, initialize, negotiate
from core.mcp.server_requests import ServerRequests
from core.mcp.session import Reply, Session, SessionLost, StreamBroken
from core.mcp.streams import GetStream, SseReader
from core.mcp.types import ClientLimits, ConnectionInfo, EraCache, ServerRequestHandler, ToolResult
from core.net.urls import parse_http_url

__all__ = ["McpClient"]

logger = logging.getLogger(__name__)

_GET_STREAM_WAIT: Final = 10.0  # at most this long for the server to answer the GET stream's request


class _InFlight:
    """One call as its cancellation needs it: the session and id of its latest attempt."""

    __slots__ = ("reissued", "request_id", "session")

    def __init__(self) -> None:
        self.session: Session | None = None
        self.request_id: int | None = None
        self.reissued = False  # a broken modern stream was re-issued once already


class McpClient:
    """An MCP client for one server URL. Safe to share between concurrent tasks of one event loop.

    ```
    async with McpClient("https://mcp.example.com/mcp", auth=StaticHeader.bearer(token)) as mcp:
        tools = await mcp.list_tools()
        result = await mcp.call_tool("search", {"query": "x"})
    ```

    `era_cache`: share one `EraCache` between the clients of an application so a second connection
    to an origin does not probe its era again; without one, each `connect()` probes.
    """

    def __init__(
        self,
        url: str,
        *,
        http: httpx2.AsyncClient | None = None,
        auth: CredentialProvider | None = None,
        timeout: float = 30.0,
        limits: ClientLimits | None = None,
        era: Literal["auto", "legacy", "modern"] = "auto",
        on_server_request: ServerRequestHandler | None = None,
        client_info: Mapping[str, Any] | None = None,
        protocol_version: str | None = None,
        capabilities: Mapping[str, Any] | None = None,
        era_cache: EraCache | None = None,
    ) -> None:
        target = parse_http_url(url, "the MCP server URL")
        self._offer = Offer.build(
            era, protocol_version, capabilities, client_info, serves_requests=on_server_request is not None
        )
        if not timeout or timeout <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        self._timeout = float(timeout)
        self._http = McpHttp(target, http, auth, self._timeout)
        self._shown = self._http.shown
        self._limits = limits = limits if limits is not None else ClientLimits.from_env()
        self._era_cache = era_cache if era_cache is not None else EraCache()
        self._server_requests = ServerRequests(on_server_request)
        self._sse = SseReader(self._http, limits, self._dispatch)

        self._session: Session | None = None
        self._info: ConnectionInfo | None = None
        self._get_stream: GetStream | None = None
        self._connect_lock = asyncio.Lock()
        self._connect_attempts = 0  # connect attempts that ended, and how the last one failed (or None)
        self._connect_failure: SwitchboardError | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else (self._session.era if self._session else "not connected")
        return f"<McpClient {self._shown} {state}>"

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- public API -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server URL this client talks to, as given."""
        return self._http.url.url

    @property
    def info(self) -> ConnectionInfo | None:
        """What `connect()` returned, or None before it has run."""
        return self._info

    async def connect(self) -> ConnectionInfo:
        """Negotiate the protocol (once; concurrent callers share it, failure included) and return
        what was learned. A call after a failed attempt tries again."""
        if self._closed:
            raise TransportError(f"the client for {self._shown} is closed")
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

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send any JSON-RPC request and return its `result` object."""
        if self._info is None:
            await self.connect()
        return (await self._request(method, params, timeout)).result

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool definition (all pages), exactly as the server sent them."""
        tools = await self._list_all("tools/list", "tools")
        return (await self._ready()).listed_tools(tools)

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
                fut.set_exception(TransportError(f"the client for {self._shown} was closed"))
        self._pending.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.end()

    # --- the session ----------------------------------------------------------------------------

    async def _connect_in_time(self) -> None:
        try:
            async with asyncio.timeout(self._timeout * 2):
                await self._start(*await negotiate(self._exchange, self._http, self._offer, self._era_cache))
        except TimeoutError:
            raise RequestTimeout(
                f"connecting to {self._shown} took longer than {self._timeout * 2:g}s"
            ) from None
        except SwitchboardError:
            raise
        except Exception as exc:
            raise _unexpected(exc, self._shown) from exc

    async def _start(self, session: Session, info: ConnectionInfo) -> None:
        """Adopt a negotiated session. When we serve the server's requests and the session has a
        standalone GET stream, the server has answered our GET before any request goes out (T-26):
        it may send its requests there mid-call, and drop them while the stream is not open."""
        self._session = session
        if session.listens and self._server_requests.handler is not None:
            stream = GetStream(
                self._sse, session, lambda: self._session is session and not self._closed, self._spawn
            )
            self._get_stream = stream
            await stream.open(min(self._timeout, _GET_STREAM_WAIT))
        self._info = info

    async def _ready(self) -> Session:
        if self._info is None or self._session is None:
            await self.connect()
        assert self._session is not None
        return self._session

    async def _recover_session(self, lost: Session) -> None:
        """The server forgot our session: re-initialize once, however many callers noticed."""
        async with self._connect_lock:
            if self._closed:
                raise TransportError(f"the client for {self._shown} was closed")
            if self._session is not lost and self._session is not None:
                return  # another caller already re-initialized
            logger.info("session on %s expired; re-initializing", self._shown)
            if self._get_stream is not None:
                self._get_stream.stop()
                self._get_stream = None
            self._session = self._info = None
            await self._start(*await initialize(self._exchange, self._http, self._offer))

    # --- the call loop --------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        params: dict[str, Any] | None,
        timeout: float | None,
        *,
        replay_on_new_session: bool = True,
    ) -> Reply:
        """One request with the protocol's retries. `replay_on_new_session=False`: when the session
        is re-created meanwhile, raise `SessionRenewed` instead of sending it again (a cursor)."""
        seconds = self._timeout if timeout is None else timeout
        return await self._bounded(
            method,
            seconds,
            lambda flight: self._attempts(method, params, seconds, flight, replay_on_new_session),
        )

    async def _exchange(
        self, session: Session, method: str, params: dict[str, Any] | None, seconds: float
    ) -> Reply:
        """One request in a given session without session recovery (negotiation)."""
        return await self._bounded(
            method, seconds, lambda flight: self._send(session, method, params, seconds, flight)
        )

    async def _bounded(
        self, method: str, seconds: float, run: Callable[[_InFlight], Awaitable[Reply]]
    ) -> Reply:
        """Run one call within `seconds`; cancel it on the wire when the caller gives up (legacy)."""
        if self._closed:
            raise TransportError(f"the client for {self._shown} is closed")
        if seconds <= 0:
            raise ConfigurationError("timeout must be a positive number of seconds")
        flight = _InFlight()
        try:
            async with asyncio.timeout(seconds):
                return await run(flight)
        except asyncio.CancelledError:
            # The caller gave up (task cancelled). Legacy servers learn it from notifications/cancelled;
            # in the modern era closing the response stream (done by unwinding) is the cancellation.
            self._announce_cancellation(method, flight, "cancelled by the client")
            raise
        except TimeoutError:
            self._announce_cancellation(method, flight, "timeout")
            raise RequestTimeout(
                f"{method} on {self._shown} got no answer within {seconds:g}s",
                hint="raise the timeout for slow tools",
            ) from None
        except (SwitchboardError, SessionRenewed):
            raise
        except Exception as exc:
            raise _unexpected(exc, self._shown) from exc

    def _announce_cancellation(self, method: str, flight: _InFlight, reason: str) -> None:
        session = flight.session
        if (
            session is not None
            and session.announces_cancellation
            and flight.request_id is not None
            and method != "initialize"
            and not self._closed
        ):
            self._spawn(
                session.notify_quietly(
                    "notifications/cancelled", {"requestId": flight.request_id, "reason": reason}
                )
            )

    async def _attempts(
        self, method: str, params: dict[str, Any] | None, seconds: float, flight: _InFlight, replay: bool
    ) -> Reply:
        session_retry = header_retry = True
        input_rounds = 0
        while True:
            session = await self._ready()
            try:
                reply = await self._send(session, method, params, seconds, flight)
            except SessionLost:
                if not session_retry:
                    raise SessionExpired(
                        f"{self._shown} forgot our session twice in a row",
                        hint="the server may be restarting; try again later",
                    ) from None
                session_retry = False
                await self._recover_session(session)
                if not replay:
                    raise SessionRenewed() from None
                continue
            except McpError as exc:
                if header_retry and session.relists_after(exc, method):
                    header_retry = False
                    await self.list_tools()  # refresh the x-mcp-header annotations, then retry
                    continue
                raise
            if session.wants_input(method, reply.result, input_rounds):
                input_rounds += 1
                params = await self._server_requests.fulfil(params, reply.result)
                continue
            return reply

    async def _send(
        self, session: Session, method: str, params: dict[str, Any] | None, seconds: float, flight: _InFlight
    ) -> Reply:
        while True:
            flight.session, flight.request_id = session, next(self._ids)
            try:
                return await self._roundtrip(session, method, params, flight.request_id, seconds)
            except StreamBroken:
                # Modern era: a broken stream loses the request; it MUST be re-issued with a new id.
                if flight.reissued:
                    raise TransportError(
                        f"{method} on {self._shown}: the response stream broke twice"
                    ) from None
                flight.reissued = True

    async def _roundtrip(
        self, session: Session, method: str, params: dict[str, Any] | None, request_id: int, seconds: float
    ) -> Reply:
        body, headers = session.frame(method, params, request_id)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            response = await self._http.send("POST", headers, body, method=method, seconds=seconds)
            leftover = None
            try:
                status = response.status_code
                if status == 200 or status == 201:
                    media = media_type(response)
                    if media == "application/json":
                        data = await self._http.read_body(response, self._limits.max_response_bytes)
                        return Reply(
                            result_of(decode_message(data), request_id, method), response.headers, len(data)
                        )
                    if media == "text/event-stream":
                        result, size, leftover = await self._sse.reply(
                            response, session, request_id, method, future, seconds
                        )
                        return Reply(result, response.headers, size)
                    raise wrong_content_type(media, self._shown, method)
                if status == 202:
                    raise ProtocolError(
                        f"{method}: {self._shown} answered a request with 202 Accepted and no response"
                    )
                error = await self._http.error_object(response)
                if session.is_lost(status, error, headers):
                    raise SessionLost()
                raise self._http.status_error(
                    response, method, error, sent_session="mcp-session-id" in headers
                )
            finally:
                if leftover is not None:
                    spawn_detached(drain_and_close(response, leftover))
                else:
                    await response.aclose()
        finally:
            self._pending.pop(request_id, None)

    # --- what streams bring ---------------------------------------------------------------------

    def _dispatch(self, message: Message, session: Session) -> None:
        """A message on a stream that is not the response the reader waits for."""
        if message.kind == Message.REQUEST:
            if session.answers_server_requests:
                self._spawn(self._answer(session, message))
            else:  # 2026-07-28 servers MUST NOT send requests on a stream (they return input_required)
                logger.warning(
                    "ignoring a %s request %s sent on a stream (not allowed in %s)",
                    message.method,
                    self._shown,
                    session.version,
                )
            return
        future = self._pending.get(message.id) if message.id is not None else None
        if future is None or future.done():
            logger.debug("ignoring a response for an unknown request id from %s", self._shown)
            return
        future.set_result(message)

    async def _answer(self, session: Session, message: Message) -> None:
        await session.answer(await self._server_requests.answer(message))

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- pagination -----------------------------------------------------------------------------

    async def _list_all(self, method: str, key: str) -> list[dict[str, Any]]:
        deadline = self._limits.listing_deadline
        return await within_deadline(self._pages(method, key), deadline, f"{method}: listing {self._shown}")

    async def _pages(self, method: str, key: str) -> list[dict[str, Any]]:
        for _restart in range(3):
            session = await self._ready()

            async def page(cursor: str | None, session: Session = session) -> Reply:
                reply = await self._request(
                    method,
                    {"cursor": cursor} if cursor is not None else None,
                    None,
                    replay_on_new_session=cursor is None,
                )
                if self._session is not session:
                    raise SessionRenewed()  # another caller re-created the session: its cursors are void
                return reply

            try:
                return await collect_pages(page, method, key, limits=self._limits, where=self._shown)
            except SessionRenewed:
                continue
        raise SessionExpired(f"{method}: the session on {self._shown} kept expiring during listing")


def _unexpected(exc: Exception, where: str) -> TransportError:
    logger.debug("unexpected error talking to %s", where)
    return TransportError(f"unexpected {type(exc).__name__} talking to {where}")
