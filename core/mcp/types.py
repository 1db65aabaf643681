"""The transport's public value types: limits, what `connect()` learned, a tool's result, and the
signature of the hook that answers the server's own requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.config import ListingLimits, load_listing_limits
from core.mcp.sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES

__all__ = ["ClientLimits", "ConnectionInfo", "Era", "EraCache", "ServerRequestHandler", "ToolResult"]

Era = Literal["legacy", "modern"]

#: `async handler(method, params) -> result dict` for requests the server sends us (elicitation,
#: sampling, roots). Return None or raise `McpError(code=-32601)` for methods it does not handle.
ServerRequestHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]


_LISTING = ListingLimits()


@dataclass(frozen=True)
class ClientLimits:
    """Caps on what a server may send. One response: `ResponseTooLarge`. One listing (a list method
    with all its pages): `PaginationError` for the pages, `ListingLimitExceeded` for the rest, whose
    defaults come from the environment with `from_env()` (see `core.config`)."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # one SSE line
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES  # one SSE event's data
    max_response_bytes: int = 16 << 20  # one HTTP response body / one request's SSE stream
    max_pages: int = 1000  # pages of one listing
    max_listing_bytes: int = _LISTING.max_bytes  # response bytes of one listing, all pages
    max_listing_items: int = _LISTING.max_items  # items (tools, resources, prompts) of one listing
    listing_deadline: float = _LISTING.deadline  # seconds for one listing, all pages

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientLimits:
        """The defaults, with the listing caps configured in the environment."""
        listing = load_listing_limits(environ)
        return cls(
            max_listing_bytes=listing.max_bytes,
            max_listing_items=listing.max_items,
            listing_deadline=listing.deadline,
        )


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


class EraCache:
    """Which era each origin spoke when last asked. One per application, shared by its clients
    (`McpClient(era_cache=...)`); a client without one probes on every connect."""

    def __init__(self) -> None:
        self._eras: dict[str, Era] = {}

    def get(self, origin: str) -> Era | None:
        return self._eras.get(origin)

    def remember(self, origin: str, era: Era) -> None:
        self._eras[origin] = era

    def clear(self) -> None:
        self._eras.clear()
