"""MCP Streamable HTTP as the gateway speaks it: both eras' framing, results and session ids.

* **2025-11-25** (and the earlier handshake revisions): `initialize` opens a session whose id the
  client sends back in `Mcp-Session-Id`; a GET with that id opens the stream that carries
  `notifications/tools/list_changed`; DELETE ends the session.
* **2026-07-28**: no session. Every POST carries `_meta` and the `MCP-Protocol-Version`,
  `Mcp-Method` and `Mcp-Name` headers, validated with the official SDK's own ladder
  (`mcp.shared.inbound.classify_inbound_request`), and `server/discover` replaces `initialize`;
  `subscriptions/listen` opens the notification stream. Results carry `resultType`.

Session ids need no shared state, so any gateway process of the same store accepts any session:
an id is a random nonce and an HMAC of it keyed by the stored hash of the token that opened it.
Another token (another agent) presenting the id gets 404, as for an unknown session; forging one
needs the token hash, which never leaves the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS

from core.mcp.jsonrpc import HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from core.mcp.negotiation import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    MODERN_PROTOCOL_VERSIONS,
)

__all__ = [
    "HANDSHAKE_PROTOCOL_VERSIONS",
    "HEADER_MISMATCH",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MODERN_PROTOCOL_VERSIONS",
    "PARSE_ERROR",
]

SERVER_NAME = "switchboard-gateway"
SERVER_VERSION = "1"
RATE_LIMITED = -32029  # implementation-defined server error (JSON-RPC reserves -32000..-32099)
_META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"
_PROTOCOL_META_PREFIX = "io.modelcontextprotocol/"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


# 2026-07-28 list and discover results are cacheable: a private cache, and never reuse without asking
# (the set changes with policy and pinning, and the gateway tells listeners when it does).
CACHE_FIELDS = {"cacheScope": "private", "ttlMs": 0}
MODERN_LIST_FIELDS = b',"cacheScope":"private","ttlMs":0,"resultType":"complete"}'


def server_info() -> dict[str, str]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION}


def instructions(agent: str) -> str:
    return (
        f"Tools of agent {agent} through Switchboard: each is named <connector>__<tool> and runs with "
        f"{agent}'s credential for that connector."
    )


def negotiate(requested: Any) -> str:
    """The handshake version to answer `initialize` with (lifecycle: ours if we do not speak theirs)."""
    return requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION


def initialize_result(requested: Any, agent: str) -> dict[str, Any]:
    return {
        "protocolVersion": negotiate(requested),
        "capabilities": {"tools": {"listChanged": True}},
        "serverInfo": server_info(),
        "instructions": instructions(agent),
    }


def discover_result(agent: str) -> dict[str, Any]:
    return {
        "supportedVersions": list(MODERN_PROTOCOL_VERSIONS),
        "capabilities": {"tools": {"listChanged": True}},
        "instructions": instructions(agent),
        "resultType": "complete",
        **CACHE_FIELDS,
        "_meta": {_META_SERVER_INFO: server_info()},
    }


def tool_result(raw: dict[str, Any], modern: bool) -> dict[str, Any]:
    """An upstream `CallToolResult` as this client's era expects it: upstream protocol metadata
    (`io.modelcontextprotocol/*` keys, `resultType`) is the upstream's business, not the agent's."""
    result = {k: v for k, v in raw.items() if k not in ("resultType", "_meta")}
    meta = raw.get("_meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not k.startswith(_PROTOCOL_META_PREFIX)}
        if kept:
            result["_meta"] = kept
    if modern:
        result["resultType"] = "complete"
    return result


def error_result(message: str, modern: bool) -> dict[str, Any]:
    """A tool-level failure (`isError`) the agent can read."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": message}], "isError": True}
    if modern:
        result["resultType"] = "complete"
    return result


def encode(message_id: Any, result: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": message_id, "result": result}, separators=(",", ":")).encode()


def encode_raw_result(message_id: Any, result_json: bytes) -> bytes:
    """A response around a result already encoded (the cached tool list)."""
    return b'{"jsonrpc":"2.0","id":' + json.dumps(message_id).encode() + b',"result":' + result_json + b"}"


def encode_error(message_id: Any, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "id": message_id, "error": error}, separators=(",", ":")).encode()


def error_status(code: int, modern: bool) -> int:
    """HTTP status of a JSON-RPC error: the 2026-07-28 table (the SDK's), 200 for the handshake era
    except where the request itself was unreadable."""
    if modern:
        return ERROR_CODE_HTTP_STATUS.get(code, 200)
    return 400 if code in (PARSE_ERROR, INVALID_REQUEST) else 200


def sse_event(message: dict[str, Any]) -> bytes:
    return b"event: message\ndata: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"


def list_changed(subscription_id: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    if subscription_id is not None:
        message["params"] = {"_meta": {SUBSCRIPTION_ID: subscription_id}}
    return message


def new_session_id(token_hash: str) -> str:
    nonce = secrets.token_hex(16)
    return nonce + _session_mac(token_hash, nonce)


def session_belongs(session_id: str, token_hash: str) -> bool:
    nonce, mac = session_id[:32], session_id[32:]
    return len(session_id) == 64 and hmac.compare_digest(mac, _session_mac(token_hash, nonce))


def _session_mac(token_hash: str, nonce: str) -> str:
    return hmac.new(token_hash.encode(), nonce.encode(), hashlib.sha256).hexdigest()[:32]
