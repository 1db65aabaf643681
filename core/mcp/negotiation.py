"""Which protocol era and version a server speaks, decided once per connection (T-06, T-07, T-11).

* **Modern** (2026-07-28): `server/discover`. Only positive evidence counts: a result naming a
  modern version, or a recognized modern error (`HeaderMismatch`, `MissingRequiredClientCapability`).
* **Legacy** (2024-11-05 … 2025-11-25): `initialize` → `Mcp-Session-Id` → `notifications/initialized`.

`era="auto"` probes `server/discover` first (like the official SDK) and falls back to `initialize`
on anything else (HTTP 4xx/5xx, JSON-RPC errors, a result without a modern version); network
errors, timeouts and authorization failures propagate, they say nothing about the era. The verdict
is kept per origin in an `EraCache` the application shares between its clients, so a second
connection does not probe again; a cached "legacy" that meets a modern-only server (-32022 to
`initialize`) is corrected.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from core.errors import (
    ConfigurationError,
    HttpStatusError,
    McpError,
    ProtocolError,
    SwitchboardError,
    UnsupportedProtocolVersion,
)
from core.mcp import jsonrpc
from core.mcp.http import McpHttp
from core.mcp.session import (
    LATEST_HANDSHAKE_VERSION,
    SESSION_ID_RE,
    LegacySession,
    ModernSession,
    Reply,
    Session,
)
from core.mcp.types import ConnectionInfo, Era, EraCache

__all__ = [
    "HANDSHAKE_PROTOCOL_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "LATEST_MODERN_VERSION",
    "MODERN_PROTOCOL_VERSIONS",
    "EraCache",
    "Offer",
    "negotiate",
]

logger = logging.getLogger(__name__)

HANDSHAKE_PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18", LATEST_HANDSHAKE_VERSION)
MODERN_PROTOCOL_VERSIONS: Final = ("2026-07-28",)
LATEST_MODERN_VERSION: Final = MODERN_PROTOCOL_VERSIONS[-1]
_META_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"
_MAX_SESSION_ID_LENGTH: Final = 1024

EraPreference = Literal["auto", "legacy", "modern"]
#: Sends one request in a given session and returns the reply (the client's, without retries).
Exchange = Callable[[Session, str, dict[str, Any] | None, float], Awaitable[Reply]]


@dataclass(frozen=True)
class Offer:
    """What a client proposes: the era it wants, a pinned version, its capabilities and info."""

    era: EraPreference
    pinned_version: str | None
    capabilities: dict[str, Any]
    client_info: dict[str, Any]

    @classmethod
    def build(
        cls,
        era: EraPreference,
        protocol_version: str | None,
        capabilities: Mapping[str, Any] | None,
        client_info: Mapping[str, Any] | None,
        *,
        serves_requests: bool,
    ) -> Offer:
        """Check the combination; without explicit capabilities, a client that serves the server's
        requests offers elicitation, sampling and roots, and one that does not offers none."""
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
        if capabilities is not None:
            offered = dict(capabilities)
        elif serves_requests:
            offered = {"elicitation": {}, "sampling": {}, "roots": {"listChanged": False}}
        else:
            offered = {}
        info = dict(client_info) if client_info else {"name": "switchboard", "version": "0.1.0"}
        return cls(era, protocol_version, offered, info)


async def negotiate(
    exchange: Exchange, http: McpHttp, offer: Offer, cache: EraCache
) -> tuple[Session, ConnectionInfo]:
    """Find the era and version (see the module docstring); the session to use and what we learned."""
    era: str = offer.era
    if offer.era == "auto":
        era = cache.get(http.url.origin) or "auto"
    if era in ("auto", "modern"):
        found = await _discover(exchange, http, offer, strict=offer.era == "modern")
        if found is not None:
            cache.remember(http.url.origin, "modern")
            return found
    try:
        negotiated = await initialize(exchange, http, offer)
    except McpError as exc:
        # A modern-only server can answer `initialize` with -32022 naming its versions; that is
        # positive modern evidence (the cache said legacy, or we skipped the probe).
        if exc.code == jsonrpc.UNSUPPORTED_PROTOCOL_VERSION and offer.era == "auto" and era == "legacy":
            found = await _discover(exchange, http, offer, strict=True)
            if found is not None:
                cache.remember(http.url.origin, "modern")
                return found
        raise
    if offer.era == "auto":
        cache.remember(http.url.origin, "legacy")
    return negotiated


async def initialize(exchange: Exchange, http: McpHttp, offer: Offer) -> tuple[LegacySession, ConnectionInfo]:
    """The legacy handshake; also how a lost session is replaced."""
    offered = (
        offer.pinned_version
        if offer.pinned_version in HANDSHAKE_PROTOCOL_VERSIONS
        else LATEST_HANDSHAKE_VERSION
    )
    params = {"protocolVersion": offered, "capabilities": offer.capabilities, "clientInfo": offer.client_info}
    # `initialize` is the negotiation itself: no session id, no MCP-Protocol-Version yet.
    reply = await exchange(LegacySession(http), "initialize", params, http.timeout)
    session_id = reply.headers.get("mcp-session-id")
    if session_id is not None and (
        len(session_id) > _MAX_SESSION_ID_LENGTH or not SESSION_ID_RE.fullmatch(session_id)
    ):
        raise ProtocolError(
            f"{http.shown} sent an invalid Mcp-Session-Id",
            hint="a session id must be visible ASCII (0x21-0x7E); refusing it to prevent header injection",
        )
    version = reply.result.get("protocolVersion")
    if version not in HANDSHAKE_PROTOCOL_VERSIONS:
        await LegacySession(http, session_id=session_id).end()
        raise UnsupportedProtocolVersion(
            f"{http.shown} negotiated an unsupported protocol version",
            hint=f"we speak {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)} (and {LATEST_MODERN_VERSION} via server/discover)",
        )
    session = LegacySession(http, version, session_id)
    await session.notify("notifications/initialized", None)
    return session, _info("legacy", version, reply.result, reply.result.get("serverInfo"))


async def _discover(
    exchange: Exchange, http: McpHttp, offer: Offer, *, strict: bool
) -> tuple[ModernSession, ConnectionInfo] | None:
    """Probe `server/discover`; None means "fall back to initialize" (never when `strict`)."""
    pinned = offer.pinned_version
    version = pinned if pinned in MODERN_PROTOCOL_VERSIONS else LATEST_MODERN_VERSION
    for _attempt in range(2):
        session = ModernSession(http, version, offer.capabilities, offer.client_info)
        try:
            reply = await exchange(session, "server/discover", None, min(http.timeout, 10.0))
        except McpError as exc:
            if exc.code in (jsonrpc.HEADER_MISMATCH, jsonrpc.MISSING_REQUIRED_CLIENT_CAPABILITY):
                # A recognized modern error: the server is modern, so falling back would be wrong.
                if exc.code == jsonrpc.MISSING_REQUIRED_CLIENT_CAPABILITY and exc.hint is None:
                    exc.hint = "the server requires a client capability we do not offer (see the error data)"
                raise
            if exc.code == jsonrpc.UNSUPPORTED_PROTOCOL_VERSION:
                supported = _supported_versions(exc.data)
                mutual = [v for v in MODERN_PROTOCOL_VERSIONS if v in supported]
                if mutual and mutual[-1] != version:
                    version = mutual[-1]
                    continue
                if strict or (supported and not any(v in HANDSHAKE_PROTOCOL_VERSIONS for v in supported)):
                    raise UnsupportedProtocolVersion(
                        f"{http.shown} supports none of our protocol versions",
                        hint=f"server supports {', '.join(supported) or 'nothing it named'}",
                    ) from None
            if strict:
                raise
            return None
        except (HttpStatusError, ProtocolError) as exc:
            if strict:
                hint = (
                    exc.hint or "this server may only speak the legacy (initialize) protocol; use era='auto'"
                )
                raise type(exc)(exc.message, hint=hint, **_status_kw(exc)) from None
            logger.debug(
                "server/discover probe on %s: %s; falling back to initialize", http.shown, exc.message
            )
            return None
        supported = reply.result.get("supportedVersions")
        mutual = [v for v in MODERN_PROTOCOL_VERSIONS if isinstance(supported, list) and v in supported]
        if not mutual:
            if strict:
                raise UnsupportedProtocolVersion(
                    f"{http.shown} answered server/discover without a modern protocol version"
                )
            return None
        if mutual[-1] != version:
            session = ModernSession(http, mutual[-1], offer.capabilities, offer.client_info)
        meta = reply.result.get("_meta")
        server_info = meta.get(_META_SERVER_INFO) if isinstance(meta, dict) else None
        return session, _info("modern", session.version, reply.result, server_info)
    return None  # pragma: no cover - the loop always returns or raises


def _info(era: Era, version: str, result: dict[str, Any], server_info: Any) -> ConnectionInfo:
    capabilities = result.get("capabilities")
    instructions = result.get("instructions")
    return ConnectionInfo(
        era=era,
        protocol_version=version,
        server_info=server_info if isinstance(server_info, dict) else {},
        capabilities=capabilities if isinstance(capabilities, dict) else {},
        instructions=instructions if isinstance(instructions, str) else None,
    )


def _supported_versions(data: Any) -> list[str]:
    if isinstance(data, dict) and isinstance(data.get("supported"), list):
        return [v for v in data["supported"] if isinstance(v, str)]
    return []


def _status_kw(exc: SwitchboardError) -> dict[str, Any]:
    return {"status": exc.status} if isinstance(exc, HttpStatusError) else {}
