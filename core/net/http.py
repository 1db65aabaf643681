"""httpx2 at the edge of `core`: the one place its exceptions become ours, and bounded body reads.

`map_httpx_errors` is a context manager around any httpx2 call (sending, reading, streaming); like
httpx's own `map_httpcore_exceptions`, nothing else translates a lower layer's exception. The map:

* `httpx2.ConnectTimeout`, `httpx2.ConnectError` (refused, unreachable, TLS handshake) -> `ConnectError`
* any other timeout (read, write, pool) -> `RequestTimeout`
* `httpx2.InvalidURL`, `httpx2.UnsupportedProtocol` -> `InvalidUrlError`
* a connection that broke after it was made (`ReadError`, `WriteError`, `CloseError`,
  `RemoteProtocolError` such as a body cut short, `StreamError`) -> `ConnectionLost`
* anything else from httpx2 -> `TransportError`

Our own errors raised below httpx (the network policy refusing an address) pass through unchanged.
Messages name the operation and the URL without userinfo or query, never a header or a body.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx2

from core.errors import (
    ConnectError,
    ConnectionLost,
    InvalidUrlError,
    RequestTimeout,
    ResponseTooLarge,
    SwitchboardError,
    TransportError,
)
from core.net.urls import redact_url
from core.redaction import install_http_log_redaction

__all__ = ["map_httpx_errors", "read_capped"]

# Every module of `core` that uses httpx2 imports this one (the pooled client too): mask secrets in
# the HTTP libraries' debug logs before any request can be logged.
install_http_log_redaction()

_CONNECTION_BROKE = (httpx2.NetworkError, httpx2.RemoteProtocolError, httpx2.StreamError)


@contextlib.contextmanager
def map_httpx_errors(doing: str, url: object) -> Iterator[None]:
    """Translate httpx2 failures inside the block (see the module docstring). `doing` names the
    operation for the message, e.g. "tools/call" or "reading the response"."""
    try:
        yield
    except httpx2.ConnectTimeout:
        raise ConnectError(f"timed out connecting to {_origin(url)}") from None
    except httpx2.ConnectError as exc:
        raise ConnectError(f"cannot connect to {_origin(url)}", hint=_connect_hint(exc)) from None
    except httpx2.TimeoutException:
        raise RequestTimeout(f"{doing} on {redact_url(url)} timed out") from None
    except (httpx2.InvalidURL, httpx2.UnsupportedProtocol):
        raise InvalidUrlError(f"cannot send to {redact_url(url)}") from None
    except _CONNECTION_BROKE as exc:
        raise ConnectionLost(
            f"{doing} on {redact_url(url)}: the connection broke ({type(exc).__name__})"
        ) from None
    except httpx2.HTTPError as exc:
        raise TransportError(f"{doing} on {redact_url(url)} failed: {type(exc).__name__}") from None


async def read_capped(
    response: httpx2.Response, limit: int, *, error: type[SwitchboardError] = ResponseTooLarge
) -> bytes:
    """The whole body of a streamed response, refusing one that declares or sends more than `limit`
    bytes with `error` (memory stays bounded whatever the server sends)."""
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(response, limit, error)
    chunks: list[bytes] = []
    total = 0
    with map_httpx_errors("reading the response", response.request.url):
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > limit:
                raise _too_large(response, limit, error)
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(response: httpx2.Response, limit: int, error: type[SwitchboardError]) -> SwitchboardError:
    return error(f"the response from {redact_url(response.request.url)} is larger than {limit} bytes")


def _origin(url: object) -> str:
    scheme, separator, rest = redact_url(url).partition("://")
    return f"{scheme}{separator}{rest.partition('/')[0]}"


def _connect_hint(exc: Exception) -> str | None:
    text = str(exc).lower()
    if "certificate" in text or "ssl" in text:
        return "TLS certificate verification failed"
    return None
