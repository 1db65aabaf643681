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
    revoke(storage, key, settings, *, http=None) -> bool
        RFC 7009 revocation of a credential's tokens when the AS offers it.
    client_credentials_token(discovery, credentials, *, scopes=None, http=None) -> TokenSet
        Agents acting as themselves: client_secret_basic or private_key_jwt.
    refresh_tokens(storage, key, http, registration, *, stale, rejected=False) -> TokenSet
        The single-flight refresh (used by OAuthProvider; exposed for the services' "refresh now").
    LoopbackListener, canonical_resource, origin
        The RFC 8252 loopback redirect (CLI, notebooks); RFC 8707 canonical server URI and its origin.
"""

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
)
from core.oauth.provider import OAuthProvider
from core.oauth.registration import ensure_client
from core.oauth.rfc7009 import revoke
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
]
