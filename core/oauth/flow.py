"""The authorization-code flow for MCP: discover → ensure a client → start → callback → tokens.

Callers make one trip each way. The services hand `begin_authorization` the connector's settings,
the server's 401 challenge, the scopes to ask for and where the operator should come back to, and get
an `Authorization`: the URL to open plus what discovery and registration found (to show and keep).
The callback route hands `finish_authorization` the query parameters and gets a `CallbackOutcome`
naming the credential and the return path, whether or not the authorization succeeded.
`enroll` is the first half alone (discover and register, as Connect does before authorizing).

`start_authorization` / `complete_authorization` are the same steps with exceptions for failures, for
`authorize_headless` (tests, conformance, the provider's headless mode), which fetches the
authorization URL without following redirects and hands the redirect's parameters back.

`state` is an opaque random handle (256 bits) naming a `PendingAuthorization` kept in storage, so the
callback may reach another process. It is single use (`take_pending` consumes it before anything else
happens) and expires after `PENDING_TTL_SECONDS`. The PKCE verifier is stored with it and only ever
sent in the body of the token request. Registration: `core/oauth/registration.py`.

Scopes (A-22, A-23): the `scope` of the server's challenge, else the PRM's `scopes_supported`, else no
`scope` parameter at all; `offline_access` is added when the AS lists it and some scope is requested
(asking for nothing but offline_access would replace the AS's default scope).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.errors import AuthorizationError, ConfigurationError, SwitchboardError
from core.oauth._http import OAuthHttp, require_secure_url, safe_description, short_error_code
from core.oauth.registration import ensure_client
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
from core.oauth.tokens import client_auth, request_token
from core.rfc9110 import Challenge

PENDING_TTL_SECONDS = 600.0
STATE_BYTES = 32
# What `secrets.token_urlsafe(STATE_BYTES)` makes: anything else was never a state of ours, and is
# refused before the store is asked (a flood of junk callbacks must not cost store sessions).
_STATE_FORM = re.compile(r"[A-Za-z0-9_-]{43}")
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


# --- one trip each way: enroll, begin, finish ----------------------------------------------------------


@dataclass(frozen=True)
class Enrollment:
    """Where and as which client Switchboard authorizes for one MCP server."""

    discovery: Discovery
    registration: ClientRegistration

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes an authorization would ask for by default (discovery's selection)."""
        return requested_scopes(self.discovery)


@dataclass(frozen=True)
class Authorization:
    """An authorization ready to start: send the browser to `url` (full-page navigation)."""

    url: str
    state: str
    enrollment: Enrollment


@dataclass(frozen=True)
class CallbackOutcome:
    """What a redirect back from the AS came to. `key` and `return_to` are known as soon as `state`
    named an authorization in progress, also when that authorization then failed (`error`)."""

    key: CredentialKey | None
    return_to: str = ""
    tokens: TokenSet | None = None
    error: SwitchboardError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def enroll(
    settings: ConnectorSettings,
    storage: OAuthStorage,
    *,
    challenge: Challenge | None = None,
    http: OAuthHttp | None = None,
) -> Enrollment:
    """Discover the server's authorization server (with its 401 `challenge`, if any) and obtain the
    client registration to use there (`core/oauth/registration.py`)."""
    http = http or OAuthHttp()
    discovery = await _discover_for(settings, challenge, http)
    return Enrollment(discovery, await ensure_client(discovery, settings, storage, http=http))


async def begin_authorization(
    storage: OAuthStorage,
    key: CredentialKey,
    settings: ConnectorSettings,
    *,
    challenge: Challenge | None = None,
    scopes: tuple[str, ...] | None = None,
    return_to: str = "",
    http: OAuthHttp | None = None,
) -> Authorization:
    """Discover, register if needed and record a pending authorization for `key`. `scopes`: the
    operator's configured scopes (None: discovery's selection); offline_access is added if offered."""
    http = http or OAuthHttp()
    return_to = _local_return_path(return_to)
    discovery = await _discover_for(settings, challenge, http)
    return await _begin(
        storage, key, settings, discovery, requested_scopes(discovery, scopes), return_to, http
    )


async def _discover_for(
    settings: ConnectorSettings, challenge: Challenge | None, http: OAuthHttp
) -> Discovery:
    # A pre-registered client prefers its own issuer when the PRM names several.
    return await discover(
        settings.server_url,
        challenge=challenge,
        http=http,
        preferred_issuer=settings.client_issuer if settings.client_id else None,
    )


async def finish_authorization(
    storage: OAuthStorage, params: Mapping[str, str], *, http: OAuthHttp | None = None
) -> CallbackOutcome:
    """Handle the redirect back from the AS; never raises for a bad callback (see `CallbackOutcome`)."""
    http = http or OAuthHttp()
    try:
        pending = await _take_pending(storage, params, expected_key=None)
    except SwitchboardError as exc:
        return CallbackOutcome(None, error=exc)
    try:
        tokens = await _finish(storage, pending, params, http)
    except SwitchboardError as exc:  # a token endpoint that times out counts as much as one that refuses
        return CallbackOutcome(pending.key, pending.return_to, error=exc)
    return CallbackOutcome(pending.key, pending.return_to, tokens=tokens)


# --- the same steps, raising ----------------------------------------------------------------------------


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
    """Prepare an authorization: returns (authorization URL to open, state handle). `scopes` are
    sent as given (None: discovery's selection plus offline_access)."""
    http = http or OAuthHttp()
    discovery = discovery or await discover(
        settings.server_url, http=http, preferred_issuer=settings.client_issuer
    )
    scopes = requested_scopes(discovery) if scopes is None else scopes
    started = await _begin(storage, key, settings, discovery, scopes, _local_return_path(return_to), http)
    return started.url, started.state


async def _begin(
    storage: OAuthStorage,
    key: CredentialKey,
    settings: ConnectorSettings,
    discovery: Discovery,
    scopes: tuple[str, ...],
    return_to: str,
    http: OAuthHttp,
) -> Authorization:
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
    pending = PendingAuthorization(
        state=secrets.token_urlsafe(STATE_BYTES),
        key=key,
        code_verifier=new_code_verifier(),
        issuer=metadata.issuer,
        client_id=registration.client_id,
        redirect_uri=settings.redirect_uri,
        resource=discovery.resource,
        scopes=scopes,
        return_to=return_to,
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
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return Authorization(url, pending.state, Enrollment(discovery, registration))


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
    pending = await _take_pending(storage, params, expected_key=expected_key)
    tokens = await _finish(storage, pending, params, http or OAuthHttp())
    return pending.key, tokens, pending.return_to


def well_formed_state(value: str | None) -> bool:
    """Whether `value` has the form of a state this module makes (says nothing of whether it is pending)."""
    return value is not None and _STATE_FORM.fullmatch(value) is not None


async def _take_pending(
    storage: OAuthStorage, params: Mapping[str, str], *, expected_key: CredentialKey | None
) -> PendingAuthorization:
    state = params.get("state")
    if not state:
        raise AuthorizationError(
            "the authorization response has no state", hint="start the authorization again"
        )
    if not well_formed_state(state):
        raise AuthorizationError(
            "the authorization response's state was not made by Switchboard",
            hint="start the authorization again",
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
    return pending


async def _finish(
    storage: OAuthStorage, pending: PendingAuthorization, params: Mapping[str, str], http: OAuthHttp
) -> TokenSet:
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
    return await asyncio.to_thread(storage.save_tokens, pending.key, tokens, expected_version=None)


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
