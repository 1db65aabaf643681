"""The outbound HTTP client every part of `core` uses: one pooled `httpx2.AsyncClient` per event loop
and network policy, with the policy enforced below httpx at connect time.

Two layers enforce `NetworkPolicy`:

* `_PolicyTransport` checks every request URL before it is sent (scheme, http only to loopback, IP
  literals). Each redirect hop a caller chooses to follow is a new request and is checked again.
* `PolicyNetworkBackend` (an httpcore2 network backend) resolves the host, drops every address the
  policy refuses, and connects to a checked IP address. httpcore still does TLS with the host name
  (SNI, certificate check) and httpx still sends `Host: <name>`, so only the socket address changes.

The client never reads proxy settings from the environment (`trust_env=False`): a proxy would make
the connect-time address check meaningless.
"""

from __future__ import annotations

import asyncio
import functools
import select
import socket
import ssl
import weakref
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

from core.errors import NetworkPolicyError
from core.net.policy import NetworkPolicy
from core.redaction import install_http_log_redaction

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "PolicyNetworkBackend",
    "aclose_shared_clients",
    "create_http_client",
    "shared_http_client",
]

DEFAULT_TIMEOUT = httpx2.Timeout(30.0, connect=10.0, pool=10.0)
# Shared by every MCP server and OAuth endpoint in the process: enough parallelism for many servers
# (each legacy session may also hold a long-lived GET stream), bounded so a runaway caller cannot
# exhaust file descriptors.
DEFAULT_LIMITS = httpx2.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30.0)
USER_AGENT = "switchboard/0.1"

install_http_log_redaction()  # before the first client can log (see core.net.http)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _StreamProtocol(asyncio.Protocol):
    """Buffers what the socket delivers; pauses the socket when the buffer is full (bounded memory)."""

    HIGH_WATER = 256 * 1024
    LOW_WATER = 64 * 1024

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._socket: Any = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._socket = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        if _QUICKACK is not None and self._socket is not None:
            # Acknowledge at once. A server with Nagle on (asyncio servers on pre-bound sockets, e.g.
            # uvicorn under gunicorn, never get TCP_NODELAY) holds its next small write until our ACK;
            # delayed ACKs would add 40 ms to every response on a reused connection.
            try:
                self._socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        self.buffer += data
        if len(self.buffer) > self.HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_readable(self) -> None:
        self._read_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._read_waiter
        finally:
            self._read_waiter = None

    async def wait_drained(self) -> None:
        self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None


class _AsyncioStream(AsyncNetworkStream):
    """A lean asyncio network stream for httpcore (instead of anyio's, which costs a cancel scope per
    read and write). Writes are corked until the next read, so a request's head and body leave in
    one segment: on loopback that halves the syscalls and wake-ups per request."""

    CORK_LIMIT = 64 * 1024

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._corked = bytearray()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if self._corked:
            await self._flush(timeout, on_read=True)
        if not protocol.buffer and not protocol.eof:
            try:
                async with asyncio.timeout(timeout):
                    while not protocol.buffer and not protocol.eof:
                        await protocol.wait_readable()
            except TimeoutError:
                raise httpcore2.ReadTimeout("timed out reading from the server") from None
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            if protocol.reading_paused and len(protocol.buffer) < protocol.LOW_WATER:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore2.ReadError(f"connection lost: {type(protocol.error).__name__}")
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._corked += buffer
        if len(self._corked) >= self.CORK_LIMIT:
            await self._flush(timeout, on_read=False)

    async def _flush(self, timeout: float | None, *, on_read: bool) -> None:
        data = bytes(self._corked)
        self._corked.clear()
        if self._transport.is_closing():
            if on_read:
                return  # the server hung up; whatever it sent before that is still readable
            raise httpcore2.WriteError("the connection was closed by the server")
        self._transport.write(data)
        if self._protocol.writing_paused:
            try:
                async with asyncio.timeout(timeout):
                    while self._protocol.writing_paused and not self._transport.is_closing():
                        await self._protocol.wait_drained()
            except TimeoutError:
                raise httpcore2.WriteTimeout("timed out writing to the server") from None

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore2.ConnectTimeout("TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore2.ConnectError(f"TLS handshake failed: {exc}") from None
        if transport is None:  # pragma: no cover - only when the loop is closing
            raise httpcore2.ConnectError("TLS handshake failed: the connection closed")
        return _AsyncioStream(transport, self._protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":
            # An idle keep-alive connection with data or EOF pending was closed by the server. Ask the
            # socket too: the FIN may be in the kernel before the event loop has delivered it to us.
            if self._protocol.buffer or self._protocol.eof or transport.is_closing():
                return True
            return _socket_readable(transport.get_extra_info("socket"))
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        return None


def _socket_readable(sock: Any) -> bool:
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


async def _connect_asyncio(
    address: str,
    port: int,
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any] | None,
) -> AsyncNetworkStream:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(
                _StreamProtocol, address, port, local_addr=(local_address, 0) if local_address else None
            )
    except TimeoutError:
        raise httpcore2.ConnectTimeout(f"timed out connecting to {address}:{port}") from None
    except OSError as exc:
        raise httpcore2.ConnectError(f"cannot connect to {address}:{port}: {exc.strerror or exc}") from None
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return _AsyncioStream(transport, protocol)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Building a verifying context reads the CA bundle (~20 ms); do it once per process, and only
    # when the first https connection needs it.
    return httpcore2.default_ssl_context(_trust_env=False)


class PolicyNetworkBackend(AsyncNetworkBackend):
    """Resolve, check against the policy, then connect to the checked address."""

    def __init__(self, policy: NetworkPolicy, inner: AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner  # None: our asyncio streams

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(host, port)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out") from None
        last_error: Exception | None = None
        for address in addresses:
            try:
                if self._inner is None:
                    return await _connect_asyncio(address, port, timeout, local_address, socket_options)
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> AsyncNetworkStream:
        raise NetworkPolicyError("unix sockets are not allowed by the outbound network policy")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _PolicyTransport(httpx2.AsyncHTTPTransport):
    """httpx2's own transport, with our pool (policy backend, lazily created TLS context)."""

    def __init__(
        self, policy: NetworkPolicy, *, verify: ssl.SSLContext | bool, limits: httpx2.Limits
    ) -> None:
        # Deliberately not calling super().__init__: it would build a TLS context eagerly and a pool
        # without our network backend. handle_async_request/aclose only use self._pool.
        self._policy = policy
        self._verify = verify
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=verify if isinstance(verify, ssl.SSLContext) else None,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=PolicyNetworkBackend(policy),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._policy.check_url(request.url)
        if request.url.scheme == "https" and self._pool._ssl_context is None:
            self._pool._ssl_context = self._tls_context()
        return await super().handle_async_request(request)

    def _tls_context(self) -> ssl.SSLContext:
        if self._verify is False:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return _default_ssl_context()


def create_http_client(
    policy: NetworkPolicy | None = None,
    *,
    verify: ssl.SSLContext | bool = True,
    limits: httpx2.Limits = DEFAULT_LIMITS,
    timeout: httpx2.Timeout = DEFAULT_TIMEOUT,
) -> httpx2.AsyncClient:
    """A new policy-enforcing client. Prefer `shared_http_client()`; use this when a caller needs its
    own trust store (`verify=ssl_context`, e.g. a test CA) or its own lifetime."""
    policy = NetworkPolicy.from_env() if policy is None else policy
    return httpx2.AsyncClient(
        transport=_PolicyTransport(policy, verify=verify, limits=limits),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


# loop -> {policy -> client}. Weak on the loop so clients of finished loops (one per test) go away.
_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[NetworkPolicy, httpx2.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def shared_http_client(policy: NetworkPolicy | None = None) -> httpx2.AsyncClient:
    """The process-wide pooled client for the running event loop and `policy` (default: the policy
    from `SWITCHBOARD_ALLOW_HOSTS`). Callers must not close it; see `aclose_shared_clients()`."""
    policy = NetworkPolicy.from_env() if policy is None else policy
    loop = asyncio.get_running_loop()
    per_loop = _shared.get(loop)
    if per_loop is None:
        per_loop = _shared[loop] = {}
    client = per_loop.get(policy)
    if client is None or client.is_closed:
        client = per_loop[policy] = create_http_client(policy)
    return client


async def aclose_shared_clients() -> None:
    """Close the running loop's shared clients (application shutdown, test teardown)."""
    loop = asyncio.get_running_loop()
    per_loop = _shared.pop(loop, {})
    for client in per_loop.values():
        await client.aclose()
