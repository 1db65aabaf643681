"""RFC 9728 protected-resource metadata (PRM): which authorization server protects the MCP server.

Where the document is looked for (A-03, A-04):

1. the `resource_metadata` URL of the server's 401 challenge, when there is one — it is then the only
   URL tried;
2. otherwise `/.well-known/oauth-protected-resource` inserted between the host and the server's path
   (`https://h/public/mcp` → `https://h/.well-known/oauth-protected-resource/public/mcp`),
3. then the root form `https://h/.well-known/oauth-protected-resource`.

Fall-through: a 3xx or 4xx answer means "not served here" and the next URL is tried; when every URL
answers that way the server has no PRM (a 2025-03-26 server: see `rfc8414.legacy_*`). A 5xx, a network
failure, or a 200 that is not a valid document aborts with `DiscoveryError`: a broken document must not
silently switch us to the legacy discovery.

Validation: the document is a JSON object; `resource` must cover the server (`rfc8707.resource_matches`:
same origin, path prefix on a segment boundary); `authorization_servers` must be a non-empty list of
https (or loopback http) issuer URLs without query or fragment. Any violation aborts before a single
request reaches an authorization server.

Choice of authorization server (RFC 9728 §7.6, A-08): the first listed, unless the operator pinned an
issuer for a pre-registered client and that issuer is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from core.errors import DiscoveryError
from core.net.urls import redact_url
from core.oauth._http import OAuthHttp, require_secure_url
from core.oauth.rfc8707 import canonical_resource, resource_matches

WELL_KNOWN = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True)
class ProtectedResourceMetadata:
    resource: str  # exactly as served: this string is the `resource` parameter we send
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] | None
    source_url: str

    def choose_authorization_server(self, preferred_issuer: str | None = None) -> str:
        if preferred_issuer and preferred_issuer in self.authorization_servers:
            return preferred_issuer
        return self.authorization_servers[0]


def well_known_urls(server_url: str) -> list[str]:
    """Path-inserted URL first (when the server URL has a path), then the root one."""
    parts = urlsplit(canonical_resource(server_url))
    root = urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN, "", ""))
    path = parts.path.rstrip("/")
    return [urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", "")), root] if path else [root]


def parse_protected_resource_metadata(
    document: dict, *, server_url: str, source_url: str
) -> ProtectedResourceMetadata:
    resource = document.get("resource")
    if not isinstance(resource, str) or not resource:
        raise DiscoveryError(f"the protected-resource metadata at {redact_url(source_url)} has no resource")
    if not resource_matches(resource, server_url):
        raise DiscoveryError(
            f"the protected-resource metadata at {redact_url(source_url)} is for {redact_url(resource)}, "
            f"not for this server ({redact_url(server_url)})",
            hint="refusing to authorize: the server may be trying to obtain a token for another resource",
        )
    servers = document.get("authorization_servers")
    if not isinstance(servers, list) or not servers or not all(isinstance(s, str) and s for s in servers):
        raise DiscoveryError(
            f"the protected-resource metadata at {redact_url(source_url)} lists no authorization_servers",
            hint="the server must name its authorization server (RFC 9728 §2)",
        )
    for issuer in servers:
        require_secure_url(issuer, "authorization server", error=DiscoveryError)
        parts = urlsplit(issuer)
        if parts.query or parts.fragment:
            raise DiscoveryError(
                f"authorization server identifier {redact_url(issuer)} has a query or fragment"
            )
    scopes = document.get("scopes_supported")
    scopes_supported = (
        tuple(s for s in scopes if isinstance(s, str) and s) if isinstance(scopes, list) else None
    )
    return ProtectedResourceMetadata(resource, tuple(servers), scopes_supported, source_url)


async def fetch_protected_resource_metadata(
    http: OAuthHttp, server_url: str, resource_metadata_url: str | None = None
) -> ProtectedResourceMetadata | None:
    """The server's PRM, or None when it publishes none (then the caller may use the legacy discovery)."""
    if resource_metadata_url:
        urls = [require_secure_url(resource_metadata_url, "resource_metadata URL", error=DiscoveryError)]
    else:
        urls = well_known_urls(server_url)
    for url in urls:
        async with http.exchange("prm", "GET", url, error=DiscoveryError) as answer:
            if answer.status == 200:
                document = answer.json_object()
                if document is None:
                    raise DiscoveryError(
                        f"the protected-resource metadata at {redact_url(url)} is not a JSON object"
                    )
                metadata = parse_protected_resource_metadata(document, server_url=server_url, source_url=url)
                answer.detail = f"authorization servers: {', '.join(metadata.authorization_servers)}"
                return metadata
            if answer.status >= 500:
                raise DiscoveryError(
                    f"the protected-resource metadata at {redact_url(url)} failed with HTTP {answer.status}",
                    hint="the server has a problem; try again later",
                )
            answer.detail = "not served here"
    if resource_metadata_url:
        raise DiscoveryError(
            f"the resource_metadata URL named by the server ({redact_url(resource_metadata_url)}) "
            "serves no metadata"
        )
    return None
