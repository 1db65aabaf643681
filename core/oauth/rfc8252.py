"""RFC 8252 §7.3 / §8.3 loopback redirect for the CLI and notebooks.

The listener binds 127.0.0.1 only (never 0.0.0.0, never the name `localhost`), on an ephemeral port
unless a port is asked for, answers exactly one callback that carries the expected `state`, and then
stops listening so the port refuses further connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Self
from urllib.parse import parse_qsl, urlsplit

from core.errors import AuthorizationError

CALLBACK_PATH = "/callback"
_MAX_REQUEST_HEAD = 16 * 1024
_DONE_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>Switchboard</title>"
    b"<p>Authorization received. You can close this window and return to Switchboard.</p>"
)


class LoopbackListener:
    """One-shot HTTP listener for an OAuth redirect on 127.0.0.1."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None
        self.expected_state: str | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("listener not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    async def start(self) -> Self:
        self._result = asyncio.get_running_loop().create_future()
        sock = _bind(self._requested_port)
        self._server = await asyncio.start_server(self._handle, sock=sock)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait(self, timeout: float) -> dict[str, str]:
        """The callback's query parameters, once a request with the expected state arrives."""
        assert self._result is not None, "listener not started"
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise AuthorizationError(
                f"no authorization callback arrived within {timeout:g} s",
                hint="open the printed URL in a browser on this machine, or raise --timeout",
            ) from None
        finally:
            await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            params = await _read_callback(reader)
            accepted = (
                params is not None
                and self.expected_state is not None
                and params.get("state") == self.expected_state
                and self._result is not None
                and not self._result.done()
            )
            if accepted:
                _respond(writer, 200, _DONE_PAGE)
                self._result.set_result(params)
                # Stop accepting at once: the port must refuse connections after the one callback.
                if self._server is not None:
                    self._server.close()
            else:
                _respond(
                    writer,
                    400,
                    b"<!doctype html><p>This is not the authorization Switchboard is waiting for.</p>",
                )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        if port == 0:
            raise
        return _bind(0)  # the preferred port is taken: any loopback port is valid (RFC 8252 §7.3)
    sock.listen(8)
    sock.setblocking(False)
    return sock


async def _read_callback(reader: asyncio.StreamReader) -> dict[str, str] | None:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    if len(head) > _MAX_REQUEST_HEAD:
        return None
    request_line = head.split(b"\r\n", 1)[0].decode("ascii", "replace")
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[0] != "GET":
        return None
    target = urlsplit(parts[1])
    if target.path != CALLBACK_PATH:
        return None
    return dict(parse_qsl(target.query, keep_blank_values=True))


def _respond(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {200: "OK", 400: "Bad Request"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-store\r\n"
        "Connection: close\r\n\r\n".encode("ascii")
        + body
    )
