"""Request headers of the modern era (2026-07-28 Streamable HTTP): value encoding, and the
`x-mcp-header` annotations that mirror tool arguments into `Mcp-Param-{Name}` headers (SEP-2243).

A server annotates a property of a tool's `inputSchema` with `"x-mcp-header": "Region"`; the client
then sends that argument's value as `Mcp-Param-Region` on every `tools/call` of the tool, so
gateways can route without parsing the body. An annotation is valid only on an integer, string or
boolean property reachable from the root through `properties` alone, as an RFC 9110 token, unique
case-insensitively; a tool whose annotations are invalid is dropped from the listing (and logged).
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

__all__ = ["ToolHeaders", "encode_header_value"]

logger = logging.getLogger(__name__)

_HEADER_SAFE_RE = re.compile(r"[\x20-\x7e]*")
_B64_SENTINEL_RE = re.compile(r"=\?base64\?.*\?=")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# JSON Schema keywords whose values are subschemas: an annotation below one of them is not on a
# plain `properties` chain (it may apply to some instances only), so it is invalid.
_SUBSCHEMA_SINGLE = frozenset(
    {
        "items",
        "contains",
        "unevaluatedItems",
        "additionalProperties",
        "propertyNames",
        "unevaluatedProperties",
        "not",
        "if",
        "then",
        "else",
        "contentSchema",
    }
)
_SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SUBSCHEMA_MAP = frozenset({"patternProperties", "dependentSchemas", "$defs", "definitions"})

HeaderMap = dict[tuple[str, ...], str]  # property path -> header token


def encode_header_value(value: str) -> str:
    """An HTTP header value for `value`: verbatim when it is plain printable ASCII without edge
    whitespace, else `=?base64?<utf-8 bytes>?=` (2026-07-28 §Value Encoding)."""
    if _HEADER_SAFE_RE.fullmatch(value) and value == value.strip() and not _B64_SENTINEL_RE.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


class ToolHeaders:
    """The `x-mcp-header` annotations of the last `tools/list`, per tool name."""

    def __init__(self) -> None:
        self._maps: dict[str, HeaderMap] = {}

    def absorb(self, tools: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
        """Remember every tool's annotations; return the tools without those whose annotations are
        invalid (`where` names the server in the warning)."""
        kept: list[dict[str, Any]] = []
        maps: dict[str, HeaderMap] = {}
        for tool in tools:
            name = tool.get("name")
            header_map, problem = _header_map(tool.get("inputSchema"))
            if problem is not None:
                logger.warning("dropping tool %r from %s: %s", name, where, problem)
                continue
            if header_map and isinstance(name, str):
                maps[name] = header_map
            kept.append(tool)
        self._maps = maps
        return kept

    def for_call(self, tool: str, arguments: Any) -> dict[str, str]:
        """The `Mcp-Param-*` headers of one `tools/call` (none for null or missing values)."""
        header_map = self._maps.get(tool)
        if not header_map:
            return {}
        arguments = arguments if isinstance(arguments, dict) else {}
        headers: dict[str, str] = {}
        for path, token in header_map.items():
            value: Any = arguments
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                continue
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                rendered = str(value)
            else:
                continue
            headers[f"Mcp-Param-{token}"] = encode_header_value(rendered)
        return headers


def _header_map(schema: Any) -> tuple[HeaderMap, str | None]:
    """Property path -> header token for every annotation, or a reason they are invalid. Iterative,
    so hostile nesting is safe."""
    found: HeaderMap = {}
    seen: set[str] = set()
    stack: list[tuple[tuple[str, ...] | None, Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "x-mcp-header" in node:
            token = node["x-mcp-header"]
            if not path:
                return {}, "x-mcp-header outside a plain properties chain"
            if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
                return {}, "x-mcp-header is not an HTTP token"
            if node.get("type") not in ("string", "integer", "boolean"):
                return {}, "x-mcp-header on a property that is not string, integer or boolean"
            if token.lower() in seen:
                return {}, f"duplicate x-mcp-header {token!r}"
            seen.add(token.lower())
            found[path] = token
        for keyword, value in node.items():
            if keyword == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    stack.append(((*path, name) if path is not None else None, sub))
            elif keyword in _SUBSCHEMA_SINGLE:
                stack.append((None, value))
            elif keyword in _SUBSCHEMA_LIST and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif keyword in _SUBSCHEMA_MAP and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())
    return found, None
