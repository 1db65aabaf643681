"""RFC 8707 resource indicators: the MCP server's canonical URI and how a resource is matched.

Canonical form (MCP "Canonical Server URI"): lowercase scheme and host, no fragment, no userinfo, the
default port dropped, and no trailing slash on an empty path (`https://h/` is `https://h`); the path and
query are kept as given. Uppercase input is accepted; a URL without scheme or with a fragment is not.

The value sent as `resource` on the authorization request, the code exchange and every refresh is the
protected-resource metadata's `resource` string exactly as served (byte-identical, A-20), or the
canonical server URI when there is no such document (2025-03-26 servers).

Matching rule for a PRM `resource` against the server (see `resource_matches`): **same origin and a
path prefix on a segment boundary**. The origins (scheme, host, port) must be equal after
canonicalization; the document's path must equal the server's path or be one of its parent segments
(`https://h` and `https://h/api` cover `https://h/api/mcp`; `https://h/ap` and `https://h/mcp/` do not
cover `https://h/mcp`); a query in the document must equal the server's. Exact matching (RFC 9728 §3.3)
would refuse servers that publish one document for their whole origin — a layout the MCP SDKs and the
conformance suite use (`auth/metadata-var2`) and draft-ietf-oauth-rfc9728bis allows — while everything
that makes the check a defence is kept: another origin (S-02, `auth/resource-mismatch`), a sibling path
or a more specific path than the server's is refused.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit, urlunsplit

from core.errors import InvalidUrlError
from core.net.urls import parse_http_url

_DEFAULT_PORTS = {"https": 443, "http": 80}


def canonical_resource(url: str) -> str:
    """The canonical URI of an MCP server or protected resource; raises `InvalidUrlError`."""
    parsed = parse_http_url(url, "the server URL")
    if parsed.port == _DEFAULT_PORTS[parsed.scheme]:
        parsed = dataclasses.replace(parsed, port=None)
    path = "" if parsed.path == "/" else parsed.path
    return urlunsplit((parsed.scheme, parsed.netloc, path, parsed.query, ""))


def origin(url: str) -> str:
    parts = urlsplit(canonical_resource(url))
    return f"{parts.scheme}://{parts.netloc}"


def resource_matches(resource: str, server_url: str) -> bool:
    """Whether a protected-resource `resource` covers this server (the rule in the module docstring)."""
    try:
        claimed = urlsplit(canonical_resource(resource))
        server = urlsplit(canonical_resource(server_url))
    except InvalidUrlError:
        return False
    if (claimed.scheme, claimed.netloc) != (server.scheme, server.netloc):
        return False
    if claimed.query and claimed.query != server.query:
        return False
    if claimed.path == server.path or claimed.path == "":
        return True
    # A parent on a segment boundary: "/api" covers "/api/mcp"; "/ap" and "/mcp/" do not cover "/mcp".
    return not claimed.path.endswith("/") and server.path.startswith(claimed.path + "/")
