"""Server-sent event streams: the SSE answer to a request, its resumption, and the standalone GET
stream of a legacy session.

* **A request's stream** (`SseReader.reply`): read until our response arrives; messages for other
  requests and the server's own requests are handed to the client's dispatcher. If the stream ends
  first, a legacy session resumes it (SEP-1699): wait the server's `retry:` delay (unless the answer
  arrives on another stream meanwhile), then GET with `Last-Event-ID`, possibly several times while
  events keep coming. A modern session cannot resume: the request is lost (`StreamBroken`).
* **The GET stream** (`GetStream`): a legacy server may send requests and notifications on it, even
  in the middle of a tool call, and drop them when the stream is not open yet (T-26). So a client
  that offers elicitation, sampling or roots opens it right after `notifications/initialized` and
  has the server's answer in hand (200, or 405 for "no stream") before it sends another request.
  A 405 ends it for the session at once; a stream that ends or breaks is reopened after `retry:`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import httpx2

from core.errors import (
    ConnectionLost,
    ProtocolError,
    RequestTimeout,
    ResponseTooLarge,
    SwitchboardError,
    TransportError,
)
from core.mcp.http import McpHttp, media_type
from core.mcp.jsonrpc import Message, decode_message, result_of
from core.mcp.session import Session, SessionLost, StreamBroken
from core.mcp.sse import SseDecoder
from core.mcp.types import ClientLimits
from core.net.http import map_httpx_errors

__all__ = ["Dispatch", "GetStream", "SseReader"]

logger = logging.getLogger(__name__)

DEFAULT_RETRY_MS: Final = 1000  # resumption delay when the server never sent `retry:`
MAX_RESUMPTIONS: Final = 5  # consecutive resumptions without a single event before giving up

#: Where a stream's messages that are not the awaited response go: responses to other requests and
#: the server's own requests (with the session whose stream carried them).
Dispatch = Callable[[Message, Session], None]


class SseReader:
    """Reads event streams from one server, within the client's size limits."""

    def __init__(self, http: McpHttp, limits: ClientLimits, dispatch: Dispatch) -> None:
        self._http = http
        self._limits = limits
        self._dispatch = dispatch

    def decoder(self, *, last_event_id: str = "", retry_ms: int | None = None) -> SseDecoder:
        decoder = SseDecoder(
            max_line_bytes=self._limits.max_line_bytes,
            max_event_bytes=self._limits.max_event_bytes,
            last_event_id=last_event_id,
        )
        decoder.retry_ms = retry_ms
        return decoder

    async def reply(
        self,
        response: httpx2.Response,
        session: Session,
        request_id: int,
        method: str,
        future: asyncio.Future[Message],
        seconds: float,
    ) -> tuple[dict[str, Any], int, AsyncIterator[bytes] | None]:
        """Our result from an SSE response, the stream bytes read for it, and the unread rest of the
        original stream when the result came on it (for draining)."""
        decoder = self.decoder()
        idle_resumptions = 0
        size = 0
        opened: httpx2.Response | None = None  # a resumption GET we must close
        chunks = response.aiter_bytes()
        try:
            while True:
                outcome, progressed, read = await self.consume(chunks, decoder, session, request_id, future)
                size += read
                if outcome is not None:
                    leftover = chunks if opened is None else None
                    return result_of(outcome, request_id, method), size, leftover
                # The stream ended without our response.
                if not session.resumes_streams:
                    raise StreamBroken()
                if not decoder.last_event_id:
                    raise TransportError(
                        f"{method}: {self._http.shown} closed the response stream without answering",
                        hint="the server sent no event id, so the stream cannot be resumed",
                    )
                idle_resumptions = 1 if progressed else idle_resumptions + 1
                if idle_resumptions > MAX_RESUMPTIONS:
                    raise TransportError(
                        f"{method}: gave up resuming the response stream from {self._http.shown}"
                    )
                delay = (decoder.retry_ms or DEFAULT_RETRY_MS) / 1000
                # Wait the server's retry delay (SEP-1699), unless the answer arrives on another stream.
                done, _ = await asyncio.wait({future}, timeout=delay)
                if done:
                    return result_of(future.result(), request_id, method), size, None
                if opened is not None:
                    await opened.aclose()
                    opened = None
                headers = session.get_headers()
                headers["last-event-id"] = decoder.last_event_id
                opened = response = await self._http.send(
                    "GET", headers, None, method=method, seconds=seconds
                )
                if response.status_code != 200 or media_type(response) != "text/event-stream":
                    if response.status_code == 404 and session.session_id is not None:
                        raise SessionLost()
                    raise TransportError(
                        f"{method}: could not resume the response stream from {self._http.shown} "
                        f"(GET answered {response.status_code})"
                    )
                decoder = self.decoder(last_event_id=decoder.last_event_id, retry_ms=decoder.retry_ms)
                chunks = response.aiter_bytes()
        finally:
            if opened is not None:
                await opened.aclose()

    async def consume(
        self,
        chunks: AsyncIterator[bytes],
        decoder: SseDecoder,
        session: Session,
        request_id: int | None,
        future: asyncio.Future[Message] | None,
    ) -> tuple[Message | None, bool, int]:
        """Read one stream until our response (returned) or its end (None). Also returns whether any
        event arrived (a resumption that makes progress resets the retry count) and the bytes read."""
        budget = self._limits.max_response_bytes if request_id is not None else None
        total = 0
        progressed = False
        dropped = 0
        try:
            with map_httpx_errors("reading the event stream", self._http.url.url):
                async for chunk in chunks:
                    total += len(chunk)
                    if budget is not None and total > budget:
                        raise ResponseTooLarge(
                            f"the response stream from {self._http.shown} exceeded {budget} bytes"
                        )
                    for event in decoder.feed(chunk):
                        progressed = True
                        if event.error is not None:
                            dropped += 1
                            _log_dropped(
                                dropped, "dropping an SSE event from %s: %s", self._http.shown, event.error
                            )
                            continue
                        if not event.data or event.event != "message":
                            continue  # priming event (resumption point only) or a type MCP does not use
                        try:
                            message = decode_message(event.data)
                        except ProtocolError as exc:
                            dropped += 1
                            _log_dropped(
                                dropped,
                                "dropping a malformed message from %s: %s",
                                self._http.shown,
                                exc.message,
                            )
                            continue
                        if message.kind in (Message.RESPONSE, Message.ERROR):
                            if (
                                request_id is not None
                                and message.id == request_id
                                and type(message.id) is type(request_id)
                            ):
                                return message, True, total
                            self._dispatch(message, session)
                        elif message.kind == Message.REQUEST:
                            self._dispatch(message, session)
                        # notifications (progress, logging, list_changed) need no action here
                    if future is not None and future.done():
                        return future.result(), True, total
        except RequestTimeout:
            raise RequestTimeout(f"the stream from {self._http.shown} went silent") from None
        except ConnectionLost:
            pass  # a dropped connection is a disconnect: resumable like a clean end of stream
        decoder.close()
        if future is not None and future.done():
            return future.result(), progressed, total
        return None, progressed, total


class GetStream:
    """The standalone GET stream of one legacy session (see the module docstring)."""

    def __init__(
        self,
        reader: SseReader,
        session: Session,
        is_current: Callable[[], bool],
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
    ) -> None:
        self._reader = reader
        self._session = session
        self._http = session.http
        self._is_current = is_current
        self._spawn = spawn
        self._answered = asyncio.Event()  # the first GET got an answer, or could not be sent
        self._task: asyncio.Task[None] | None = None

    async def open(self, wait: float) -> None:
        """Start listening; return once the server has answered the first GET, or after `wait`
        seconds (a server that holds its answer back must not hold the connection up forever)."""
        self._task = self._spawn(self._listen())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._answered.wait()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _listen(self) -> None:
        try:
            await self._keep_listening()
        finally:
            self._answered.set()  # however it ended, nobody waits for it any more

    async def _keep_listening(self) -> None:
        last_event_id = ""
        retry_ms: int | None = None
        failures = 0
        while self._is_current() and failures < MAX_RESUMPTIONS:
            headers = self._session.get_headers()
            if last_event_id:
                headers["last-event-id"] = last_event_id
            try:
                response = await self._http.send("GET", headers, None, method=None, seconds=None)
            except SwitchboardError as exc:
                logger.debug("GET stream on %s failed: %s", self._http.shown, type(exc).__name__)
                failures += 1
                self._answered.set()
                await asyncio.sleep((retry_ms or DEFAULT_RETRY_MS) / 1000)
                continue
            self._answered.set()
            try:
                if response.status_code != 200 or media_type(response) != "text/event-stream":
                    logger.debug("%s offers no GET stream (%s)", self._http.shown, response.status_code)
                    return  # 405: the server offers no stream; never ask again for this session
                decoder = self._reader.decoder(last_event_id=last_event_id, retry_ms=retry_ms)
                progressed = False
                try:
                    _, progressed, _ = await self._reader.consume(
                        response.aiter_bytes(), decoder, self._session, None, None
                    )
                except SwitchboardError as exc:
                    logger.debug("GET stream on %s failed: %s", self._http.shown, type(exc).__name__)
                last_event_id, retry_ms = decoder.last_event_id, decoder.retry_ms
                failures = 0 if progressed else failures + 1
            finally:
                await response.aclose()
            await asyncio.sleep((retry_ms or DEFAULT_RETRY_MS) / 1000)


def _log_dropped(count: int, message: str, *args: Any) -> None:
    # A hostile stream can send millions of bad events: warn once per stream, then only at debug.
    logger.log(logging.WARNING if count == 1 else logging.DEBUG, message, *args)
