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
import ssl
import weakref
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

from core.errors import NetworkPolicyError
from core.net.policy import NetworkPolicy

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


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Building a verifying context reads the CA bundle (~20 ms); do it once per process, and only
    # when the first https connection needs it.
    return httpcore2.default_ssl_context(_trust_env=False)


class PolicyNetworkBackend(AsyncNetworkBackend):
    """Resolve, check against the policy, then connect to the checked address."""

    def __init__(self, policy: NetworkPolicy, inner: AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore2.AnyIOBackend()

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
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> AsyncNetworkStream:
        raise NetworkPolicyError("unix sockets are not allowed by the outbound network policy")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PolicyTransport(httpx2.AsyncHTTPTransport):
    """httpx2's own transport, with our pool (policy backend, lazily created TLS context)."""

    def __init__(self, policy: NetworkPolicy, *, verify: ssl.SSLContext | bool, limits: httpx2.Limits) -> None:
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
