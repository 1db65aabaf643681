"""MCP over Streamable HTTP, both protocol eras: `McpClient` and what its callers need.

    from core.mcp import McpClient, StaticHeader

Names are loaded on first use: `core.mcp.auth` (the credential-provider protocol the OAuth package
implements) must stay cheap to import without pulling in httpx2 and the whole transport.

Modules: `client` (McpClient and its call loop), `negotiation` (eras, versions, `EraCache`),
`session` (what differs per era), `http` (sending, status errors), `streams` (SSE answers,
resumption, the GET stream), `headers` (`x-mcp-header`), `listing` (pagination), `server_requests`
(elicitation, sampling, roots), `sse` (the event-stream decoder), `jsonrpc` (framing), `auth`
(credential providers), `types` (value types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core._lazy import lazy_exports

if TYPE_CHECKING:
    from core.mcp.auth import AuthChallenge, CredentialProvider, NoAuth, StaticHeader
    from core.mcp.client import McpClient
    from core.mcp.headers import encode_header_value
    from core.mcp.negotiation import (
        HANDSHAKE_PROTOCOL_VERSIONS,
        LATEST_HANDSHAKE_VERSION,
        LATEST_MODERN_VERSION,
        MODERN_PROTOCOL_VERSIONS,
        EraCache,
    )
    from core.mcp.types import ClientLimits, ConnectionInfo, Era, ServerRequestHandler, ToolResult

__all__ = [
    "HANDSHAKE_PROTOCOL_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "LATEST_MODERN_VERSION",
    "MODERN_PROTOCOL_VERSIONS",
    "AuthChallenge",
    "ClientLimits",
    "ConnectionInfo",
    "CredentialProvider",
    "Era",
    "EraCache",
    "McpClient",
    "NoAuth",
    "ServerRequestHandler",
    "StaticHeader",
    "ToolResult",
    "encode_header_value",
]

_HOME = {
    "AuthChallenge": "auth",
    "CredentialProvider": "auth",
    "NoAuth": "auth",
    "StaticHeader": "auth",
    "McpClient": "client",
    "encode_header_value": "headers",
    "HANDSHAKE_PROTOCOL_VERSIONS": "negotiation",
    "LATEST_HANDSHAKE_VERSION": "negotiation",
    "LATEST_MODERN_VERSION": "negotiation",
    "MODERN_PROTOCOL_VERSIONS": "negotiation",
    "EraCache": "types",
    "ClientLimits": "types",
    "ConnectionInfo": "types",
    "Era": "types",
    "ServerRequestHandler": "types",
    "ToolResult": "types",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOME)
