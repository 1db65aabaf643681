"""An in-memory OAuth 2.1 authorization server for the SDK's `OAuthAuthorizationServerProvider`.

Behaviour tests rely on:
- `/authorize` auto-approves and redirects back with `code`, `state` and (by default) `iss`;
- the subject is the request's `login_hint`, else a queued `next_subject`, else `user-<n>`;
- access tokens live `token_ttl` seconds; refresh tokens rotate strictly: a used refresh token is
  dead, and presenting it again is a *reuse event* that revokes its whole token family (every
  token descended from the same authorization code);
- tokens are bound to the resource (RFC 8707); with `require_resource`, /authorize refuses a
  request without `resource`, and any other resource is `invalid_target`;
- `machine_clients` {client_id: secret} may use the client_credentials grant (`client_secret_basic`),
  served by `ClientCredentialsGrant` in servers.py: the token's subject is the client id, no refresh
  token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from sample_servers.control import Counters, Identity, current_login_hint, current_path, fingerprint

VALID_SCOPES = ["read", "write", "admin"]
DEFAULT_GRANTED_SCOPES = ["read", "write"]
AUTH_CODE_TTL_SECONDS = 300
WRONG_ISSUER = "https://wrong-issuer.example"


class FamilyCode(AuthorizationCode):
    family: str


class FamilyRefreshToken(RefreshToken):
    family: str


class FamilyAccessToken(AccessToken):
    family: str


@dataclass
class AuthServerSettings:
    issuer: str
    resource: str
    token_ttl: int = 3600
    refresh_ttl: int | None = None
    require_resource: bool = True
    # "correct": send iss=<issuer>; "omit": send none and do not advertise it; "missing": advertise
    # it but send none (RFC 9207 §2.4: the client must reject); anything else is sent verbatim.
    iss_param: str = "correct"
    # Prepended to every code, access token, refresh token and DCR client secret the AS mints, so
    # leak tests can search for a known marker (S-12 canaries).
    secret_prefix: str = ""
    # Pre-registered clients allowed the client_credentials grant: client_id -> client secret.
    machine_clients: dict[str, str] = field(default_factory=dict)
    # Overrides the `authorization_servers` the resource's PRM names (a server moving, or pointing
    # at a hostile authorization server); None serves the real one.
    authorization_servers: list[str] | None = None

    def update(self, changes: dict[str, Any]) -> None:
        for key in ("token_ttl", "refresh_ttl", "require_resource", "iss_param", "authorization_servers"):
            if key in changes:
                setattr(self, key, changes[key])


class SampleAuthServer(OAuthAuthorizationServerProvider[FamilyCode, FamilyRefreshToken, FamilyAccessToken]):
    def __init__(self, settings: AuthServerSettings, counters: Counters) -> None:
        self.settings = settings
        self.counters = counters
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, FamilyCode] = {}
        self.access_tokens: dict[str, FamilyAccessToken] = {}
        self.refresh_tokens: dict[str, FamilyRefreshToken] = {}
        self.used_refresh_tokens: dict[str, str] = {}  # token -> family
        self.revoked_families: set[str] = set()
        self.queued_subjects: list[str] = []
        self._subject_serial = 0

    # --- clients ----------------------------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        if self.settings.secret_prefix and client_info.client_secret:
            # The SDK returns this same object as the registration response, so the client gets it too.
            client_info.client_secret = self.settings.secret_prefix + client_info.client_secret
        self.clients[client_info.client_id] = client_info
        self.counters.registrations += 1

    # --- authorization ----------------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        redirect_uri = str(params.redirect_uri)
        error = self._resource_error(params.resource)
        if error is not None:
            # Answered here rather than by raising AuthorizeError: the SDK's error redirect has no
            # `iss`, which RFC 9207 requires on error responses too.
            code, description = error
            return construct_redirect_uri(
                redirect_uri, error=code, error_description=description, state=params.state, iss=self._iss()
            )
        code = FamilyCode(
            code=self.settings.secret_prefix + secrets.token_urlsafe(32),
            scopes=params.scopes or self._default_scopes(client),
            expires_at=time.time() + AUTH_CODE_TTL_SECONDS,
            client_id=client.client_id or "",
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource or self.settings.resource,
            subject=self._next_subject(),
            family=secrets.token_hex(8),
        )
        self.codes[code.code] = code
        self.counters.authorizations += 1
        return construct_redirect_uri(redirect_uri, code=code.code, state=params.state, iss=self._iss())

    def _resource_error(self, requested: str | None) -> tuple[str, str] | None:
        """RFC 8707 check of the `resource` parameter; (error, description) when it fails."""
        expected = self.settings.resource
        if requested is None:
            if self.settings.require_resource:
                return "invalid_request", "the resource parameter (RFC 8707) is required"
            return None
        if requested.rstrip("/") != expected.rstrip("/"):
            return "invalid_target", f"unknown resource; this server protects {expected}"
        return None

    def _default_scopes(self, client: OAuthClientInformationFull) -> list[str]:
        registered = client.scope.split() if client.scope else VALID_SCOPES
        return [scope for scope in DEFAULT_GRANTED_SCOPES if scope in registered]

    def _next_subject(self) -> str:
        hint = current_login_hint.get()
        if hint:
            return hint
        if self.queued_subjects:
            return self.queued_subjects.pop(0)
        self._subject_serial += 1
        return f"user-{self._subject_serial}"

    def _iss(self) -> str | None:
        mode = self.settings.iss_param
        if mode in ("omit", "missing"):
            return None
        return self.settings.issuer if mode == "correct" else mode

    # --- token endpoint ---------------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> FamilyCode | None:
        code = self.codes.get(authorization_code)
        if code is None or code.client_id != client.client_id:
            return None
        return code

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: FamilyCode
    ) -> OAuthToken:
        if self.codes.pop(authorization_code.code, None) is None:
            raise TokenError("invalid_grant", "authorization code already used")
        self.counters.tokens_issued["authorization_code"] += 1
        return self._issue(authorization_code, authorization_code.scopes)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> FamilyRefreshToken | None:
        if refresh_token in self.used_refresh_tokens:
            # Only a token-endpoint presentation is reuse; the revocation endpoint also loads tokens.
            if current_path.get() == "/token":
                self._reuse_detected(self.used_refresh_tokens[refresh_token])
            return None
        token = self.refresh_tokens.get(refresh_token)
        if token is None or token.client_id != client.client_id or token.family in self.revoked_families:
            return None
        return token

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: FamilyRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        if self.refresh_tokens.pop(refresh_token.token, None) is None:
            # Lost a race with a concurrent refresh of the same token: that is reuse too.
            self._reuse_detected(refresh_token.family)
            raise TokenError("invalid_grant", "refresh token already used")
        self.used_refresh_tokens[refresh_token.token] = refresh_token.family
        self.counters.tokens_issued["refresh_token"] += 1
        return self._issue(refresh_token, scopes)

    def authenticate_machine_client(self, authorization: str) -> str | None:
        """The `machine_clients` client an `Authorization: Basic` header (RFC 6749 §2.3.1: id and
        secret form-urlencoded) authenticates, or None."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        expected = self.settings.machine_clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        return client_id

    def issue_client_credentials(
        self,
        client_id: str,
        scopes: list[str],
        resource: str,
        *,
        subject: str | None = None,
        grant: str = "client_credentials",
    ) -> OAuthToken:
        """An access token for a machine client acting as itself, or (`subject`) for the user an
        identity assertion names; no refresh token (RFC 6749 §4.4.3, RFC 7523 §2.1)."""
        now = int(time.time())
        access = FamilyAccessToken(
            token=self.settings.secret_prefix + secrets.token_urlsafe(32),
            client_id=client_id,
            scopes=scopes,
            expires_at=now + self.settings.token_ttl,
            resource=resource,
            subject=subject or client_id,
            claims={"iss": self.settings.issuer},
            family=secrets.token_hex(8),
        )
        self.access_tokens[access.token] = access
        self.counters.tokens_issued[grant] += 1
        return OAuthToken(
            access_token=access.token, expires_in=self.settings.token_ttl, scope=" ".join(scopes)
        )

    def _reuse_detected(self, family: str) -> None:
        self.counters.reuse_events += 1
        self._revoke_family(family)

    def _issue(self, grant: FamilyCode | FamilyRefreshToken, scopes: list[str]) -> OAuthToken:
        now = int(time.time())
        settings = self.settings
        access = FamilyAccessToken(
            token=settings.secret_prefix + secrets.token_urlsafe(32),
            client_id=grant.client_id,
            scopes=scopes,
            expires_at=now + settings.token_ttl,
            resource=grant.resource,
            subject=grant.subject,
            claims={"iss": settings.issuer},
            family=grant.family,
        )
        refresh = FamilyRefreshToken(
            token=settings.secret_prefix + secrets.token_urlsafe(32),
            client_id=grant.client_id,
            scopes=scopes,
            expires_at=now + settings.refresh_ttl if settings.refresh_ttl else None,
            resource=grant.resource,
            subject=grant.subject,
            family=grant.family,
        )
        self.access_tokens[access.token] = access
        self.refresh_tokens[refresh.token] = refresh
        return OAuthToken(
            access_token=access.token,
            expires_in=settings.token_ttl,
            scope=" ".join(scopes),
            refresh_token=refresh.token,
        )

    # --- verification and revocation --------------------------------------------------------

    async def load_access_token(self, token: str) -> FamilyAccessToken | None:
        access = self.access_tokens.get(token)
        if access is None or access.family in self.revoked_families:
            return None
        if access.expires_at is not None and access.expires_at < time.time():
            return None
        return access

    async def revoke_token(self, token: FamilyAccessToken | FamilyRefreshToken) -> None:
        self.counters.revocations += 1
        self._revoke_family(token.family)

    def _revoke_family(self, family: str) -> None:
        self.revoked_families.add(family)

    # --- helpers for the control plane and the resource server ------------------------------

    def identify(self, token: str) -> Identity | None:
        access = self.access_tokens.get(token)
        if access is None or access.family in self.revoked_families:
            return None
        if access.expires_at is not None and access.expires_at < time.time():
            return None
        return Identity(
            auth="oauth",
            subject=access.subject or "?",
            client_id=access.client_id,
            scopes=tuple(access.scopes),
            fingerprint=fingerprint(token),
        )

    def expire_access_tokens(self) -> int:
        """Make every access token already expired, so refresh paths run without waiting."""
        past = int(time.time()) - 1
        for access in self.access_tokens.values():
            access.expires_at = past
        return len(self.access_tokens)

    def revoke_everything(self) -> int:
        families = {t.family for t in self.access_tokens.values()} | {
            t.family for t in self.refresh_tokens.values()
        }
        self.revoked_families |= families
        return len(families)
