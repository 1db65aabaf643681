"""The authorization-code flow for MCP: discover → ensure a client → start → callback → tokens.

The dashboard calls `start_authorization` (it opens the returned URL for the operator) and, from its
callback route, `complete_authorization` with the callback's query parameters. Tests, the CLI's
headless mode and the conformance entry point use `authorize_headless`, which fetches the
authorization URL without following redirects and hands the redirect's parameters to the very same
`complete_authorization`.

`state` is an opaque random handle (256 bits) naming a `PendingAuthorization` kept in storage, so the
callback may reach another process. It is single use (`take_pending` consumes it before anything else
happens) and expires after `PENDING_TTL_SECONDS`. The PKCE verifier is stored with it and only ever
sent in the body of the token request.

Registration ladder, per issuer (A-13): the operator's pre-registered client → a Client ID Metadata
Document when the AS supports it and a CIMD URL is configured → RFC 7591 DCR (one registration in
flight per issuer and redirect URI: an asyncio lock in the event loop, and the storage's per-key lock
(`refresh_lock` under a key no credential has) for threads and processes sharing the storage) → a
`RegistrationError` asking the operator for a pre-registered client. A registration is stored under
its issuer and never presented to another one.

Scopes (A-22, A-23): the `scope` of the server's challenge, else the PRM's `scopes_supported`, else no
`scope` parameter at all; `offline_access` is added when the AS lists it and some scope is requested
(asking for nothing but offline_access would replace the AS's default scope).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.errors import AuthorizationError, ConfigurationError, RegistrationError, SwitchboardError
from core.oauth._http import OAuthHttp, require_secure_url, safe_description, short_error_code
from core.oauth.cimd import cimd_registration
from core.oauth.rfc7591 import choose_auth_method, client_metadata, register_client
from core.oauth.rfc7636 import choose_method, code_challenge, new_code_verifier
from core.oauth.rfc8414 import (
    AuthorizationServerMetadata,
    fetch_authorization_server_metadata,
    legacy_metadata,
)
from core.oauth.rfc8707 import canonical_resource
from core.oauth.rfc9207 import check_iss
from core.oauth.rfc9728 import ProtectedResourceMetadata, fetch_protected_resource_metadata
from core.oauth.storage import ClientRegistration, CredentialKey, OAuthStorage, PendingAuthorization, TokenSet
from core.oauth.tokens import client_auth, request_token, storage_lock
from core.rfc9110 import Challenge

PENDING_TTL_SECONDS = 600.0
DEFAULT_REDIRECT_URI = "http://127.0.0.1/oauth/callback"


@dataclass(frozen=True, repr=False)
class ConnectorSettings:
    """The operator's OAuth configuration for one connector (one MCP server)."""

    server_url: str
    redirect_uri: str = DEFAULT_REDIRECT_URI
    client_name: str = "Switchboard"
    # A pre-registered client. `client_issuer` pins it to one authorization server; without it the
    # client is used with whichever issuer the server's metadata names.
    client_id: str | None = None
    client_secret: str | None = None
    client_auth_method: str | None = None  # default: from the AS's supported methods
    client_issuer: str | None = None
    client_metadata_url: str | None = None  # our Client ID Metadata Document, if published
    allow_plain_pkce: bool = False  # legacy AS that does not advertise S256 (see rfc7636)

    def __repr__(self) -> str:
        return (
            f"ConnectorSettings(server_url={self.server_url!r}, client_id={self.client_id!r}, "
            f"secret={'<redacted>' if self.client_secret else None})"
        )


@dataclass(frozen=True)
class Discovery:
    """Where and how to authorize for one MCP server, as discovered just now."""

    server_url: str  # canonical
    resource: str  # the `resource` parameter, byte-identical everywhere
    metadata: AuthorizationServerMetadata
    protected_resource: ProtectedResourceMetadata | None  # None: a 2025-03-26 server
    challenge_scopes: tuple[str, ...] | None = None

    @property
    def issuer(self) -> str:
        return self.metadata.issuer

    def scopes(self) -> tuple[str, ...]:
        """Scope selection (A-22): the challenge's, else the PRM's scopes_supported, else none."""
        if self.challenge_scopes is not None:
            return self.challenge_scopes
        if self.protected_resource is not None and self.protected_resource.scopes_supported is not None:
            return self.protected_resource.scopes_supported
        return ()


async def discover(
    server_url: str,
    *,
    challenge: Challenge | None = None,
    preferred_issuer: str | None = None,
    http: OAuthHttp | None = None,
) -> Discovery:
    """Find the authorization server of an MCP server (RFC 9728, RFC 8414, 2025-03-26 fallback)."""
    http = http or OAuthHttp()
    server = canonical_resource(server_url)
    prm = await fetch_protected_resource_metadata(
        http, server, challenge.get("resource_metadata") if challenge else None
    )
    if prm is not None:
        metadata = await fetch_authorization_server_metadata(
            http, prm.choose_authorization_server(preferred_issuer)
        )
        resource = prm.resource
    else:
        metadata = await legacy_metadata(http, server)
        resource = server
    scope = challenge.get("scope") if challenge else None
    return Discovery(server, resource, metadata, prm, tuple(scope.split()) if scope is not None else None)


# --- registration --------------------------------------------------------------------------------------

_registration_locks: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[int, str, str], asyncio.Lock]
] = weakref.WeakKeyDictionary()


async def ensure_client(
    discovery: Discovery, settings: ConnectorSettings, storage: OAuthStorage, *, http: OAuthHttp | None = None
) -> ClientRegistration:
    """The client registration to use with this discovery's issuer (the ladder in the module docstring)."""
    http = http or OAuthHttp()
    metadata = discovery.metadata
    issuer = metadata.issuer
    if settings.client_id:
        registration = _pre_registered(settings, metadata)
        if registration is not None:
            await asyncio.to_thread(storage.save_client, registration)
            http.note("register", issuer, "using the pre-registered client")
            return registration
    stored = await _stored_client(storage, issuer, settings.redirect_uri)
    if stored is not None:
        return stored
    if metadata.client_id_metadata_document_supported and settings.client_metadata_url:
        registration = cimd_registration(issuer, settings.client_metadata_url, settings.redirect_uri)
        await asyncio.to_thread(storage.save_client, registration)
        http.note("register", issuer, "using our client ID metadata document")
        return registration
    if metadata.registration_endpoint:
        locks = _registration_locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault((id(storage), issuer, settings.redirect_uri), asyncio.Lock()):
            stored = await _stored_client(
                storage, issuer, settings.redirect_uri
            )  # registered while we waited
            if stored is not None:
                return stored
            # Other processes sharing the storage: the storage's lock, taken off the event loop.
            async with storage_lock(storage, _registration_key(issuer, settings.redirect_uri)):
                stored = await _stored_client(storage, issuer, settings.redirect_uri)  # another process did
                if stored is not None:
                    return stored
                request = client_metadata(
                    client_name=settings.client_name,
                    redirect_uris=[settings.redirect_uri],
                    token_endpoint_auth_method=choose_auth_method(
                        metadata.token_endpoint_auth_methods_supported
                    ),
                )
                registration = await register_client(
                    http,
                    issuer=issuer,
                    registration_endpoint=metadata.registration_endpoint,
                    metadata=request,
                )
                await asyncio.to_thread(storage.save_client, registration)
                return registration
    raise RegistrationError(
        f"the authorization server {issuer} offers no way to register Switchboard automatically "
        "(no dynamic client registration"
        + (
            ", and no client ID metadata document is configured)"
            if metadata.client_id_metadata_document_supported
            else ")"
        ),
        hint=f"register a client at {issuer} with redirect URI {settings.redirect_uri} and enter its "
        "client_id (and secret) in the connector's settings",
    )


def _registration_key(issuer: str, redirect_uri: str) -> CredentialKey:
    """The key of the storage lock under which (issuer, redirect URI) is registered: no credential
    has it (connector ids are hex)."""
    return CredentialKey(f"dcr:{issuer}", redirect_uri)


def _pre_registered(
    settings: ConnectorSettings, metadata: AuthorizationServerMetadata
) -> ClientRegistration | None:
    if settings.client_issuer and settings.client_issuer != metadata.issuer:
        raise RegistrationError(
            f"the pre-registered client is for {settings.client_issuer}, but the server now names the "
            f"authorization server {metadata.issuer}",
            hint="its credentials are not sent to another authorization server; register a client there and "
            "update the connector",
        )
    method = settings.client_auth_method
    if method is None:
        supported = metadata.token_endpoint_auth_methods_supported
        if not settings.client_secret:
            method = "none"
        elif (
            supported is not None
            and "client_secret_basic" not in supported
            and "client_secret_post" in supported
        ):
            method = "client_secret_post"
        else:
            method = "client_secret_basic"
    return ClientRegistration(
        issuer=metadata.issuer,
        client_id=settings.client_id or "",
        client_secret=settings.client_secret,
        token_endpoint_auth_method=method,
        redirect_uris=(settings.redirect_uri,),
        method="pre_registered",
    )


async def _stored_client(storage: OAuthStorage, issuer: str, redirect_uri: str) -> ClientRegistration | None:
    stored = await asyncio.to_thread(storage.get_client, issuer, redirect_uri)
    if stored is None or stored.issuer != issuer or stored.method == "pre_registered":
        return None  # pre-registered clients come from the settings, which may have changed
    if stored.client_secret_expires_at and stored.client_secret_expires_at <= time.time():
        return None
    return stored


# --- authorization -------------------------------------------------------------------------------------


def requested_scopes(discovery: Discovery, scopes: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """`scopes` (e.g. a step-up's union) or the discovery's selection, plus offline_access if offered."""
    scopes = list(dict.fromkeys(discovery.scopes() if scopes is None else scopes))
    offered = discovery.metadata.scopes_supported or ()
    if scopes and "offline_access" in offered and "offline_access" not in scopes:
        scopes.append("offline_access")
    return tuple(scopes)


def _local_return_path(return_to: str) -> str:
    # Only a path on our own origin: the callback must never become an open redirector (S-11).
    if return_to and (
        not return_to.startswith("/")
        or return_to.startswith("//")
        or "\\" in return_to
        or any(ord(c) < 0x20 for c in return_to)
    ):
        raise ConfigurationError("return_to must be a local path such as /connectors/x")
    return return_to


async def start_authorization(
    storage: OAuthStorage,
    key: CredentialKey,
    settings: ConnectorSettings,
    *,
    discovery: Discovery | None = None,
    scopes: tuple[str, ...] | None = None,
    return_to: str = "",
    http: OAuthHttp | None = None,
) -> tuple[str, str]:
    """Prepare an authorization: returns (authorization URL to open, state handle)."""
    http = http or OAuthHttp()
    discovery = discovery or await discover(
        settings.server_url, http=http, preferred_issuer=settings.client_issuer
    )
    metadata = discovery.metadata
    method = choose_method(
        metadata.code_challenge_methods_supported,
        has_metadata=metadata.source != "defaults",
        allow_plain=settings.allow_plain_pkce,
        issuer=metadata.issuer,
    )
    endpoint = require_secure_url(
        metadata.authorization_endpoint, "authorization_endpoint", error=AuthorizationError
    )
    registration = await ensure_client(discovery, settings, storage, http=http)
    scopes = requested_scopes(discovery) if scopes is None else scopes
    pending = PendingAuthorization(
        state=secrets.token_urlsafe(32),
        key=key,
        code_verifier=new_code_verifier(),
        issuer=metadata.issuer,
        client_id=registration.client_id,
        redirect_uri=settings.redirect_uri,
        resource=discovery.resource,
        scopes=scopes,
        return_to=_local_return_path(return_to),
        token_endpoint=metadata.token_endpoint,
        iss_parameter_supported=metadata.authorization_response_iss_parameter_supported,
    )
    await asyncio.to_thread(storage.save_pending, pending)
    params = {
        "response_type": "code",
        "client_id": registration.client_id,
        "redirect_uri": settings.redirect_uri,
        "state": pending.state,
        "code_challenge": code_challenge(pending.code_verifier, method),
        "code_challenge_method": method,
        "resource": discovery.resource,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    parts = urlsplit(endpoint)
    query = (
        f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    )  # keep the endpoint's own query
    http.note("authorize", endpoint, f"authorization started (scopes: {' '.join(scopes) or 'none'})")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")), pending.state


async def complete_authorization(
    storage: OAuthStorage,
    params: Mapping[str, str],
    *,
    expected_key: CredentialKey | None = None,
    http: OAuthHttp | None = None,
) -> tuple[CredentialKey, TokenSet, str]:
    """Handle the redirect back from the AS: returns (credential, stored tokens, return_to path).

    `expected_key`, when the caller knows whose authorization this should be (an agent's own callback),
    refuses a state that belongs to another credential.
    """
    http = http or OAuthHttp()
    state = params.get("state")
    if not state:
        raise AuthorizationError(
            "the authorization response has no state", hint="start the authorization again"
        )
    pending = await asyncio.to_thread(storage.take_pending, state)
    if pending is None:
        raise AuthorizationError(
            "the authorization response does not match an authorization in progress "
            "(unknown, already used or expired state)",
            hint="start the authorization again",
        )
    if expected_key is not None and pending.key != expected_key:
        raise AuthorizationError(
            "the authorization response belongs to another credential's authorization",
            hint="start the authorization again",
        )
    try:
        return await _finish(storage, pending, params, http)
    except SwitchboardError as exc:  # a token endpoint that times out counts as much as one that refuses
        # Whoever shows the error needs to know whose authorization failed and where it began.
        exc.key, exc.return_to = pending.key, pending.return_to
        raise


async def _finish(
    storage: OAuthStorage, pending: PendingAuthorization, params: Mapping[str, str], http: OAuthHttp
) -> tuple[CredentialKey, TokenSet, str]:
    if time.time() - pending.created_at > PENDING_TTL_SECONDS:
        raise AuthorizationError(
            "the authorization took longer than 10 minutes and expired", hint="start the authorization again"
        )
    verified = check_iss(
        params.get("iss"), expected_issuer=pending.issuer, advertised=pending.iss_parameter_supported
    )
    if "error" in params:
        # error_description is attacker-controlled unless the response is bound to our AS by `iss`.
        description = safe_description(params.get("error_description")) if verified else ""
        raise AuthorizationError(
            f"the authorization server refused the authorization: {short_error_code(params['error'])}"
            + (f" ({description})" if description else ""),
            hint="start the authorization again, or check the client's permissions at the authorization server",
        )
    code = params.get("code")
    if not code:
        raise AuthorizationError(
            "the authorization response has no code", hint="start the authorization again"
        )
    registration = await asyncio.to_thread(storage.get_client, pending.issuer, pending.redirect_uri)
    if (
        registration is None
        or registration.issuer != pending.issuer
        or registration.client_id != pending.client_id
    ):
        raise AuthorizationError(
            "the client registration used for this authorization is gone",
            hint="start the authorization again",
        )
    tokens = await request_token(
        http,
        step="token",
        token_endpoint=pending.token_endpoint,
        auth=client_auth(registration),
        params={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.code_verifier,
            "resource": pending.resource,
        },
        issuer=pending.issuer,
        client_id=pending.client_id,
        resource=pending.resource,
        requested_scopes=pending.scopes,
    )
    stored = await asyncio.to_thread(storage.save_tokens, pending.key, tokens, expected_version=None)
    return pending.key, stored, pending.return_to


async def authorize_headless(
    storage: OAuthStorage,
    key: CredentialKey,
    settings: ConnectorSettings,
    *,
    discovery: Discovery | None = None,
    scopes: tuple[str, ...] | None = None,
    http: OAuthHttp | None = None,
) -> TokenSet:
    """Authorize against an auto-approving AS (tests, conformance): follow the flow without a browser.

    The authorization URL is fetched without following redirects; code, state and iss are taken from
    the `Location` that points back to our redirect URI and passed to `complete_authorization`.
    """
    http = http or OAuthHttp()
    url, state = await start_authorization(
        storage, key, settings, discovery=discovery, scopes=scopes, http=http
    )
    try:
        async with http.exchange("authorize", "GET", url, error=AuthorizationError) as answer:
            location = answer.headers.get("location", "")
            target = urlsplit(location)
            expected = urlsplit(settings.redirect_uri)
            if not (300 <= answer.status < 400) or (target.scheme, target.netloc, target.path) != (
                expected.scheme,
                expected.netloc,
                expected.path,
            ):
                raise AuthorizationError(
                    f"the authorization endpoint did not redirect back to {settings.redirect_uri} "
                    f"(HTTP {answer.status})",
                    hint="it may require an interactive login",
                )
            answer.detail = "redirected back"
    except BaseException:
        await asyncio.to_thread(storage.take_pending, state)  # the flow is abandoned: drop its verifier now
        raise
    _, tokens, _ = await complete_authorization(
        storage, dict(parse_qsl(target.query, keep_blank_values=True)), expected_key=key, http=http
    )
    return tokens
