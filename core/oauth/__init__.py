"""OAuth 2.1 for MCP: discovery, client registration, authorization, tokens — one module per RFC.

The services layer uses only what is exported here. Every function talks to the network through an
`OAuthHttp` (default: the shared policy-enforcing client of `core.net`; pass
`OAuthHttp(client, trace)` to use another client or to record the auth trace) and persists through
an `OAuthStorage` (the DuckDB store, or `MemoryOAuthStorage`). Errors are `core.errors.AuthError`
subclasses whose messages never contain a secret.

    discover(server_url, *, challenge=None, preferred_issuer=None, http=None) -> Discovery
        PRM (RFC 9728) → AS metadata (RFC 8414 / OIDC, issuer checked), or the 2025-03-26 fallback.
    ensure_client(discovery, settings, storage, *, http=None) -> ClientRegistration
        Pre-registered → client ID metadata document → DCR (RFC 7591) → RegistrationError; per issuer.
    enroll(settings, storage, *, challenge=None, http=None) -> Enrollment
        discover + ensure_client in one call (what Connect does before authorizing).
    begin_authorization(storage, key, settings, *, challenge=None, scopes=None, return_to="", http=None)
            -> Authorization (url, state, enrollment)
        One trip: discover, register, store a PendingAuthorization (PKCE verifier, issuer, resource...)
        under the random state.
    finish_authorization(storage, callback_params, *, http=None) -> CallbackOutcome
        The callback: state (single use, 10 min), RFC 9207 iss, error, code exchange, validation, save;
        never raises for a bad callback (the outcome names the credential and the return path).
    start_authorization / complete_authorization
        The same two steps raising on failure (headless flows and tests).
    authorize_headless(storage, key, settings, *, discovery=None, scopes=None, http=None) -> TokenSet
        Tests/conformance: GET the authorization URL without following redirects, then the same
        complete_authorization.
    OAuthProvider(storage, key, settings, *, http=None, headless=False, client_credentials=None,
                  tokens=None, pin_issuer=None)
        The transport's CredentialProvider: proactive and 401 refresh (single flight), step-up; an
        operator's client secret goes only to the first authorization server it went to (pinned).
    revoke(storage, key, settings, *, http=None) -> Revocation
        RFC 7009 revocation of a credential's tokens when the AS offers it (else why not; raises
        when it failed).
    client_credentials_token(discovery, credentials, *, scopes=None, http=None) -> TokenSet
        Agents acting as themselves: client_secret_basic or private_key_jwt.
    refresh_tokens(storage, key, http, registration, *, stale, rejected=False) -> TokenSet
        The single-flight refresh (used by OAuthProvider; exposed for the services' "refresh now").
    LoopbackListener, canonical_resource, origin
        The RFC 8252 loopback redirect (CLI, notebooks); RFC 8707 canonical server URI and its origin.
"""

from typing import TYPE_CHECKING

# Each public name and the module that defines it. They load on first use (PEP 562 `__getattr__`):
# `import core.oauth` or `core.oauth.storage` must not pull in authlib, JOSE and httpx for a command
# that never talks OAuth (the CLI's `connector list`).
_EXPORTS = {
    "OAuthHttp": "core.oauth._http",
    "client_metadata_document": "core.oauth.cimd",
    "ClientCredentials": "core.oauth.client_credentials",
    "client_credentials_token": "core.oauth.client_credentials",
    "Authorization": "core.oauth.flow",
    "CallbackOutcome": "core.oauth.flow",
    "ConnectorSettings": "core.oauth.flow",
    "Discovery": "core.oauth.flow",
    "Enrollment": "core.oauth.flow",
    "authorize_headless": "core.oauth.flow",
    "begin_authorization": "core.oauth.flow",
    "complete_authorization": "core.oauth.flow",
    "discover": "core.oauth.flow",
    "enroll": "core.oauth.flow",
    "finish_authorization": "core.oauth.flow",
    "well_formed_state": "core.oauth.flow",
    "start_authorization": "core.oauth.flow",
    "OAuthProvider": "core.oauth.provider",
    "ensure_client": "core.oauth.registration",
    "Revocation": "core.oauth.rfc7009",
    "revoke": "core.oauth.rfc7009",
    "LoopbackListener": "core.oauth.rfc8252",
    "canonical_resource": "core.oauth.rfc8707",
    "origin": "core.oauth.rfc8707",
    "ClientRegistration": "core.oauth.storage",
    "CredentialKey": "core.oauth.storage",
    "MemoryOAuthStorage": "core.oauth.storage",
    "OAuthStorage": "core.oauth.storage",
    "PendingAuthorization": "core.oauth.storage",
    "TokenSet": "core.oauth.storage",
    "refresh_tokens": "core.oauth.tokens",
    "AuthTrace": "core.oauth.trace",
    "MemoryTrace": "core.oauth.trace",
    "TraceEvent": "core.oauth.trace",
}

if TYPE_CHECKING:
    from core.oauth._http import OAuthHttp
    from core.oauth.cimd import client_metadata_document
    from core.oauth.client_credentials import ClientCredentials, client_credentials_token
    from core.oauth.flow import (
        Authorization,
        CallbackOutcome,
        ConnectorSettings,
        Discovery,
        Enrollment,
        authorize_headless,
        begin_authorization,
        complete_authorization,
        discover,
        enroll,
        finish_authorization,
        start_authorization,
        well_formed_state,
    )
    from core.oauth.provider import OAuthProvider
    from core.oauth.registration import ensure_client
    from core.oauth.rfc7009 import Revocation, revoke
    from core.oauth.rfc8252 import LoopbackListener
    from core.oauth.rfc8707 import canonical_resource, origin
    from core.oauth.storage import (
        ClientRegistration,
        CredentialKey,
        MemoryOAuthStorage,
        OAuthStorage,
        PendingAuthorization,
        TokenSet,
    )
    from core.oauth.tokens import refresh_tokens
    from core.oauth.trace import AuthTrace, MemoryTrace, TraceEvent

__all__ = [
    "AuthTrace",
    "Authorization",
    "CallbackOutcome",
    "ClientCredentials",
    "ClientRegistration",
    "ConnectorSettings",
    "CredentialKey",
    "Discovery",
    "Enrollment",
    "LoopbackListener",
    "MemoryOAuthStorage",
    "MemoryTrace",
    "OAuthHttp",
    "OAuthProvider",
    "OAuthStorage",
    "PendingAuthorization",
    "Revocation",
    "TokenSet",
    "TraceEvent",
    "authorize_headless",
    "begin_authorization",
    "canonical_resource",
    "client_credentials_token",
    "client_metadata_document",
    "complete_authorization",
    "discover",
    "enroll",
    "ensure_client",
    "finish_authorization",
    "origin",
    "refresh_tokens",
    "revoke",
    "start_authorization",
    "well_formed_state",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core.oauth' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
