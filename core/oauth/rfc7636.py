"""RFC 7636 PKCE: a fresh verifier per authorization, S256 only unless an operator says otherwise.

The verifier is 64 characters of base64url from `secrets` (384 bits, above the 256 bits §7.1 asks for)
and lives only in the stored `PendingAuthorization` and the body of the token request — never in a URL.

Method choice (A-18, A-19): a metadata document must list `S256` in `code_challenge_methods_supported`;
when it does not (missing field, or `plain` only) we refuse, unless the connector sets
`allow_plain_pkce` for a legacy authorization server. With that override we still send S256 unless the
server lists `plain` and not `S256`. Without any metadata (2025-03-26 default endpoints) S256 is used,
which that revision requires of every server.
"""

from __future__ import annotations

import secrets

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from core.errors import DiscoveryError


def new_code_verifier() -> str:
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str, method: str) -> str:
    return create_s256_code_challenge(verifier) if method == "S256" else verifier


def choose_method(
    methods_supported: tuple[str, ...] | None, *, has_metadata: bool, allow_plain: bool, issuer: str
) -> str:
    if not has_metadata or (methods_supported and "S256" in methods_supported):
        return "S256"
    if not allow_plain:
        raise DiscoveryError(
            f"the authorization server {issuer} does not advertise PKCE with S256",
            hint="refusing to authorize without PKCE; if this server is known to be a legacy one, "
            "enable allow_plain_pkce on the connector",
        )
    return "plain" if methods_supported and "plain" in methods_supported else "S256"
