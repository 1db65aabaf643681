"""Authorization-server metadata: RFC 8414, OpenID Connect Discovery, and the 2025-03-26 fallbacks.

URLs tried for an issuer, in the MCP spec's order (A-09), stopping at the first usable document:

* issuer with a path (`https://as/tenant1`): `/.well-known/oauth-authorization-server/tenant1`,
  `/.well-known/openid-configuration/tenant1`, `/tenant1/.well-known/openid-configuration`
  (the root `/.well-known/oauth-authorization-server` is never asked);
* issuer without a path: `/.well-known/oauth-authorization-server`, `/.well-known/openid-configuration`.

Fall-through policy: a 3xx or 4xx means "not served here" → next URL. A 5xx, a network failure, a 200
that is not a JSON object, or a document whose `issuer` is not *identical* to the issuer the URL was
built from (no normalization: a trailing slash, an uppercase host or an explicit `:443` all differ)
aborts the discovery: an impostor document must never be skipped over in favour of the next one.

A document is used only if its endpoints are https (http for loopback only), it has an
`authorization_endpoint` and a `token_endpoint`, and `response_types_supported`, when present,
includes `code`.

2025-03-26 servers publish no protected-resource metadata: the authorization server is then the MCP
server's origin, its RFC 8414 document is looked up there (`legacy_metadata`), and when there is none
the default endpoints `/authorize`, `/token` and `/register` on that origin are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.errors import DiscoveryError
from core.net.urls import redact_url
from core.oauth._http import OAuthHttp, require_secure_url
from core.oauth.rfc8707 import origin

OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class AuthorizationServerMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    response_types_supported: tuple[str, ...] | None = None
    grant_types_supported: tuple[str, ...] | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    client_id_metadata_document_supported: bool = False
    authorization_response_iss_parameter_supported: bool = False
    source: str = "rfc8414"  # "rfc8414" | "oidc" | "defaults" (2025-03-26 servers without metadata)
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def metadata_urls(issuer: str) -> list[tuple[str, str]]:
    """(url, kind) pairs to try for this issuer, in order."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")  # RFC 8414 §3.1: a terminating "/" is removed before inserting

    def at(p: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, p, "", ""))

    if path:
        return [
            (at(OAUTH_WELL_KNOWN + path), "rfc8414"),
            (at(OIDC_WELL_KNOWN + path), "oidc"),
            (at(path + OIDC_WELL_KNOWN), "oidc"),
        ]
    return [(at(OAUTH_WELL_KNOWN), "rfc8414"), (at(OIDC_WELL_KNOWN), "oidc")]


def parse_metadata(
    document: dict[str, Any], *, expected_issuer: str, source: str, url: str
) -> AuthorizationServerMetadata:
    issuer = document.get("issuer")
    if issuer != expected_issuer:
        raise DiscoveryError(
            f"the authorization-server metadata at {redact_url(url)} names issuer {_shown(issuer)}, "
            f"expected exactly {expected_issuer}",
            hint="refusing to use it (RFC 8414 §3.3): a mismatched issuer is how mix-up attacks start",
        )

    def endpoint(name: str, required: bool) -> str | None:
        value = document.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise DiscoveryError(
                f"the authorization-server metadata of {expected_issuer} has no valid {name}"
            )
        return require_secure_url(value, name, error=DiscoveryError)

    def strings(name: str) -> tuple[str, ...] | None:
        value = document.get(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise DiscoveryError(
                f"the authorization-server metadata of {expected_issuer} has an invalid {name}"
            )
        return tuple(v for v in value if isinstance(v, str))

    response_types = strings("response_types_supported")
    if response_types is not None and "code" not in response_types:
        raise DiscoveryError(f"the authorization server {expected_issuer} does not support the code flow")
    return AuthorizationServerMetadata(
        issuer=issuer,
        authorization_endpoint=endpoint("authorization_endpoint", True),  # type: ignore[arg-type]
        token_endpoint=endpoint("token_endpoint", True),  # type: ignore[arg-type]
        registration_endpoint=endpoint("registration_endpoint", False),
        revocation_endpoint=endpoint("revocation_endpoint", False),
        scopes_supported=strings("scopes_supported"),
        response_types_supported=response_types,
        grant_types_supported=strings("grant_types_supported"),
        code_challenge_methods_supported=strings("code_challenge_methods_supported"),
        token_endpoint_auth_methods_supported=strings("token_endpoint_auth_methods_supported"),
        client_id_metadata_document_supported=document.get("client_id_metadata_document_supported") is True,
        authorization_response_iss_parameter_supported=(
            document.get("authorization_response_iss_parameter_supported") is True
        ),
        source=source,
        document=document,
    )


async def fetch_authorization_server_metadata(http: OAuthHttp, issuer: str) -> AuthorizationServerMetadata:
    require_secure_url(issuer, "authorization server", error=DiscoveryError)
    metadata = await _first_document(http, issuer, metadata_urls(issuer))
    if metadata is None:
        raise DiscoveryError(
            f"the authorization server {issuer} publishes no metadata",
            hint="none of the RFC 8414 / OpenID Connect discovery URLs answered",
        )
    return metadata


async def legacy_metadata(http: OAuthHttp, server_url: str) -> AuthorizationServerMetadata:
    """2025-03-26: metadata on the MCP server's origin, else the default endpoints there."""
    base = origin(server_url)
    metadata = await _first_document(http, base, [(base + OAUTH_WELL_KNOWN, "rfc8414")])
    if metadata is not None:
        return metadata
    http.note("as_metadata", base, "no metadata: using the 2025-03-26 default endpoints")
    return AuthorizationServerMetadata(
        issuer=base,
        authorization_endpoint=base + "/authorize",
        token_endpoint=base + "/token",
        registration_endpoint=base + "/register",
        source="defaults",
    )


async def _first_document(
    http: OAuthHttp, issuer: str, candidates: list[tuple[str, str]]
) -> AuthorizationServerMetadata | None:
    for url, kind in candidates:
        async with http.exchange("as_metadata", "GET", url, error=DiscoveryError) as answer:
            if answer.status == 200:
                document = answer.json_object()
                if document is None:
                    raise DiscoveryError(
                        f"the authorization-server metadata at {redact_url(url)} is not a JSON object"
                    )
                metadata = parse_metadata(document, expected_issuer=issuer, source=kind, url=url)
                answer.detail = "issuer matches"
                return metadata
            if answer.status >= 500:
                raise DiscoveryError(
                    f"the authorization-server metadata at {redact_url(url)} failed with HTTP {answer.status}",
                    hint="the authorization server has a problem",
                )
            answer.detail = "not served here"
    return None


def _shown(value: object) -> str:
    return redact_url(value) if isinstance(value, str) else "(none)"
