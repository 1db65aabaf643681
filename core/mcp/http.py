"""HTTP to one MCP endpoint: send (with the credential's headers and one retry after a 401/403 the
provider can fix), read a bounded body, turn a non-2xx answer into a typed error, release a
response so its connection goes back to the pool.

Every httpx2 call goes through `core.net.http.map_httpx_errors`; nothing here knows JSON-RPC
sessions or eras (the session strategy decides what a 404 means, see `core.mcp.session`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Final

import httpx2

from core.errors import (
    AuthRequired,
    HttpStatusError,
    InsufficientScope,
    ProtocolError,
    SwitchboardError,
    TransportError,
)
from core.mcp import jsonrpc
from core.mcp.auth import AuthChallenge, CredentialProvider
from core.mcp.jsonrpc import Message, decode_message
from core.net.http import map_httpx_errors, read_capped
from core.net.urls import HttpUrl, redact_url
from core.rfc9110 import parse_www_authenticate

__all__ = ["McpHttp", "drain_and_close", "media_type", "release", "wrong_content_type"]

logger = logging.getLogger(__name__)

MAX_ERROR_BODY: Final = 64 * 1024  # how much of a non-2xx body we read to find a JSON-RPC error
_DRAIN_SECONDS: Final = 2.0  # how long a finished response may take to end before we drop it
_DRAIN_BYTES: Final = 64 * 1024


class McpHttp:
    """The HTTP side of one `McpClient`: its endpoint, pool, credential provider and timeouts."""

    def __init__(
        self, url: HttpUrl, http: httpx2.AsyncClient | None, auth: CredentialProvider | None, timeout: float
    ) -> None:
        self.url = url
        self.shown = url.shown  # the URL as messages show it (no query: API keys sometimes travel there)
        with map_httpx_errors("parsing the URL", url.url):
            self._request_url = httpx2.URL(url.url)  # parsed once, not per request
        self._http = http
        self._own_http = http is None  # None: the shared pool of core.net, looked up per event loop
        self._auth = auth
        self.timeout = timeout  # the client's default per-request timeout, in seconds
        self._timeouts: dict[float, httpx2.Timeout] = {}

    def _client(self) -> httpx2.AsyncClient:
        client = self._http
        if client is None or (self._own_http and client.is_closed):
            from core.net.client import shared_http_client

            client = self._http = shared_http_client()
        return client

    def _httpx_timeout(self, seconds: float | None) -> httpx2.Timeout:
        key = -1.0 if seconds is None else seconds
        timeout = self._timeouts.get(key)
        if timeout is None:
            if seconds is None:  # long-lived GET stream: only connecting is bounded
                timeout = httpx2.Timeout(None, connect=min(self.timeout, 10.0))
            else:
                timeout = httpx2.Timeout(seconds, connect=min(seconds, 10.0))
            self._timeouts[key] = timeout
        return timeout

    async def send(
        self,
        verb: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        method: str | None,
        seconds: float | None,
    ) -> httpx2.Response:
        """Send one request with the credential's headers; on 401/403 let the provider react and
        retry once. Returns the open (streaming) response; the caller closes it."""
        client = self._client()
        timeout = self._httpx_timeout(seconds)
        for attempt in (0, 1):
            if self._auth is not None:
                request_headers = {**headers, **(await self._auth.auth_headers())}
            else:
                request_headers = headers
            with map_httpx_errors(method or verb, self.url.url):
                request = client.build_request(
                    verb, self._request_url, content=body, headers=request_headers, timeout=timeout
                )
                response = await client.send(request, stream=True)
            status = response.status_code
            if status != 401 and status != 403:
                return response
            challenge = AuthChallenge(
                status=status,
                challenges=parse_www_authenticate(response.headers.get_list("www-authenticate")),
                url=self.url.url,
                method=method or "",
            )
            await release(response)
            if self._auth is not None and attempt == 0 and await self._auth.handle_challenge(challenge):
                continue
            raise _auth_error(challenge, self.shown)
        raise AssertionError("unreachable")  # pragma: no cover

    async def read_body(self, response: httpx2.Response, limit: int) -> bytes:
        return await read_capped(response, limit)

    async def error_object(self, response: httpx2.Response) -> dict[str, Any] | None:
        """The JSON-RPC error object in a non-2xx answer's JSON body, if there is one."""
        if media_type(response) != "application/json":
            return None
        try:
            message = decode_message(await self.read_body(response, MAX_ERROR_BODY))
        except TransportError:  # too large, malformed, cut short: the status alone must do
            return None
        return message.raw["error"] if message.kind == Message.ERROR else None

    def status_error(
        self, response: httpx2.Response, method: str, error: dict[str, Any] | None, *, sent_session: bool
    ) -> SwitchboardError:
        """The error for a non-2xx answer that is not an authorization failure nor a lost session."""
        status = response.status_code
        if error is not None:
            exc = jsonrpc.error_from_object(error, method=method)
            if status == 400 and not sent_session and "session" in exc.message.lower():
                exc.hint = (
                    "this server needs the initialize handshake (Mcp-Session-Id); use era='auto' or 'legacy'"
                )
            return exc
        location = response.headers.get("location") if 300 <= status < 400 else None
        return HttpStatusError(
            f"{method}: {self.shown} answered HTTP {status}",
            status=status,
            hint=_status_hint(status, media_type(response), location),
        )


async def release(response: httpx2.Response) -> None:
    """Close a response whose body we do not need (202 to a notification, DELETE, a 401/403 before the
    retry). A short body of declared length is read first: closing a response with its body unread
    makes httpcore drop the connection, so the next request would open a new one."""
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= _DRAIN_BYTES:
        with contextlib.suppress(TimeoutError, TransportError):
            async with asyncio.timeout(_DRAIN_SECONDS):
                with map_httpx_errors("releasing a response", response.request.url):
                    async for _chunk in response.aiter_bytes():
                        pass
    await response.aclose()


async def drain_and_close(response: httpx2.Response, chunks: AsyncIterator[bytes]) -> None:
    """Read the end of a stream whose answer we already have, then close it: the server ends the
    stream right after our response, and reading that end lets the connection go back to the pool
    instead of being dropped. Run in the background (see `spawn_detached`)."""
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


_detached: set[asyncio.Task[Any]] = set()


def spawn_detached(coro: Awaitable[Any]) -> None:
    """Bounded background work that must outlive the client (it only returns a connection to the
    pool), so `close()` neither cancels nor waits for it."""
    task = asyncio.ensure_future(coro)
    _detached.add(task)
    task.add_done_callback(_detached.discard)


def media_type(response: httpx2.Response) -> str:
    value = response.headers.get("content-type")
    if not value:
        return ""
    return value.partition(";")[0].strip().lower()


def wrong_content_type(media: str, where: str, method: str) -> ProtocolError:
    if media in ("text/html", "application/xhtml+xml"):
        return ProtocolError(
            f"{method}: {where} answered with an HTML page",
            hint="this URL is not an MCP endpoint; check the path (often /mcp) or a login redirect",
        )
    shown = media or "no Content-Type"
    return ProtocolError(
        f"{method}: {where} answered with {shown}",
        hint="an MCP server answers application/json or text/event-stream",
    )


def _status_hint(status: int, media: str, location: str | None) -> str | None:
    if status == 406:
        return "the server rejected our Accept header (application/json, text/event-stream); a proxy may be rewriting it"
    if status == 405:
        return "this URL does not accept POST: not a Streamable HTTP MCP endpoint (the old HTTP+SSE transport is not supported)"
    if status == 404:
        return "no MCP endpoint at this path"
    if location is not None:
        return f"redirects are not followed; if {redact_url(location)} is the server, use that URL"
    if status == 400:
        return "the server rejected the request"
    if status == 429:
        return "the server is rate limiting; try again later"
    if status >= 500:
        return "the server failed; a tools/call is never retried automatically, other requests can be tried again"
    if media == "text/html":
        return "this URL is not an MCP endpoint"
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
