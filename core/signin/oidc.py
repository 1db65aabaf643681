"""OpenID Connect sign-in for the dashboard: authorization code with PKCE, state and nonce, and an ID
token validated before anyone is let in (OpenID Connect Core 1.0 §3.1.3.7).

    begin(return_to) -> (authorization URL, state)
        Discovery from the issuer's metadata (`core/oauth/rfc8414.py`: the document's `issuer` must
        be the configured one, endpoints https), a fresh state, nonce and PKCE S256 verifier kept
        here, in memory, for ten minutes; the browser carries only the state.
    finish(params, browser_state) -> Principal
        The state must be the one this browser was given (a sealed cookie) and still pending
        (single use); an `iss` parameter must be the issuer (RFC 9207); the code is exchanged with
        the client's secret (client_secret_basic, or _post when that is all the provider offers);
        the ID token's signature is checked against the provider's JWKS (joserfc; asymmetric
        algorithms the provider announces, never `none` or a MAC), then `iss`, `aud` (and `azp`),
        `exp`, `iat` and `nonce` (authlib's `CodeIDToken`). The role comes from the claims
        (`OidcSettings.role_of`); a user with no role is refused.

Why not Panel's OAuth plumbing (`--oauth-provider generic`): it needs the endpoints spelled out
(no discovery), sends no nonce, decodes the ID token without checking its signature, issuer,
audience or expiry (`panel.util.decode_token`), and only knows "signed in or not" — no role from a
claim. All of that is what makes OIDC sign-in safe, so it is done here on the OAuth pieces the
connectors already use (discovery, PKCE, token request, the outbound network policy).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from core.errors import SignInError, SwitchboardError
from core.oauth._http import OAuthHttp, require_secure_url, short_error_code
from core.oauth.rfc7636 import code_challenge, new_code_verifier
from core.oauth.rfc8414 import AuthorizationServerMetadata, fetch_authorization_server_metadata
from core.oauth.tokens import client_auth, encode_token_request
from core.roles import Principal
from core.signin.settings import OidcSettings

PENDING_SECONDS = 600.0
MAX_PENDING = 1000
CLOCK_LEEWAY_SECONDS = 60
# Signatures made with the provider's private key; `none` and MACs (HS*, keyed by the client secret
# a provider and every client share) are never accepted.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True, repr=False)
class _Pending:
    nonce: str
    verifier: str
    return_to: str
    expires_at: float


@dataclass
class _Provider:
    metadata: AuthorizationServerMetadata
    jwks_uri: str
    algorithms: tuple[str, ...]
    keys: Any = field(default=None, repr=False)  # joserfc KeySet, fetched on first use


class OidcSignIn:
    def __init__(self, settings: OidcSettings, redirect_uri: str, *, http: OAuthHttp | None = None) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._http = http
        self._provider: _Provider | None = None
        self._provider_lock = asyncio.Lock()
        self._pending: dict[str, _Pending] = {}

    @property
    def http(self) -> OAuthHttp:
        if self._http is None:
            self._http = OAuthHttp()  # the shared client: the outbound network policy applies
        return self._http

    async def begin(self, return_to: str) -> tuple[str, str]:
        """The identity provider's authorization URL for a new sign-in, and its state."""
        provider = await self._discover()
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), new_code_verifier()
        self._remember(state, _Pending(nonce, verifier, return_to, time.monotonic() + PENDING_SECONDS))
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge(verifier, "S256"),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in provider.metadata.authorization_endpoint else "?"
        return provider.metadata.authorization_endpoint + separator + urlencode(query), state

    async def finish(self, params: Mapping[str, str], browser_state: str | None) -> tuple[Principal, str]:
        """Who signed in (and the local path the sign-in began on), or `SignInError`."""
        state = params.get("state", "")
        if not state or not browser_state or not secrets.compare_digest(state, browser_state):
            raise SignInError("this sign-in was not started in this browser", hint="sign in again")
        pending = self._pending.pop(state, None)
        if pending is None or pending.expires_at < time.monotonic():
            raise SignInError("this sign-in expired or was already used", hint="sign in again")
        provider = await self._discover()
        if "iss" in params and params["iss"] != provider.metadata.issuer:
            raise SignInError("the answer came from another identity provider (iss)", hint="sign in again")
        if "error" in params:
            raise SignInError(
                f"the identity provider refused the sign-in ({short_error_code(params['error'])})",
                hint="check that your account may use Switchboard",
            )
        code = params.get("code", "")
        if not code:
            raise SignInError("the identity provider's answer has no code", hint="sign in again")
        answer = await self._exchange(provider, code, pending.verifier)
        claims = await self._validated_claims(provider, answer, pending.nonce)
        role = self.settings.role_of(claims)
        who = _display_name(claims)
        if role is None:
            raise SignInError(
                f"{who} has no Switchboard role",
                hint=f"an admin adds them (or a group in their {self.settings.role_claim!r} claim) "
                "to SWITCHBOARD_OIDC_VIEWERS, _OPERATORS or _ADMINS",
            )
        return Principal(who, role), pending.return_to

    # --- steps ---------------------------------------------------------------------------------

    async def _discover(self) -> _Provider:
        async with self._provider_lock:
            if self._provider is None:
                try:
                    metadata = await fetch_authorization_server_metadata(self.http, self.settings.issuer)
                except SwitchboardError as exc:
                    raise SignInError(
                        f"the identity provider's metadata: {exc.message}", hint=exc.hint
                    ) from None
                jwks_uri = metadata.document.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise SignInError(f"{self.settings.issuer} publishes no jwks_uri: not an OpenID Provider")
                require_secure_url(jwks_uri, "jwks_uri", error=SignInError)
                announced = metadata.document.get("id_token_signing_alg_values_supported") or ["RS256"]
                algorithms = tuple(a for a in ASYMMETRIC_ALGORITHMS if a in announced)
                if not algorithms:
                    raise SignInError(
                        f"{self.settings.issuer} signs ID tokens with no algorithm accepted here"
                    )
                self._provider = _Provider(metadata, jwks_uri, algorithms)
            return self._provider

    async def _exchange(self, provider: _Provider, code: str, verifier: str) -> dict[str, Any]:
        params = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        token_endpoint = provider.metadata.token_endpoint
        headers, body = encode_token_request(
            client_auth(self._registration(provider)), token_endpoint, params
        )
        async with self.http.exchange(
            "signin_token", "POST", token_endpoint, error=SignInError, form=body, headers=headers
        ) as answer:
            document = answer.json_object()
            if answer.status != 200 or document is None:
                error = short_error_code((document or {}).get("error", f"HTTP {answer.status}"))
                raise SignInError(
                    f"the identity provider refused the code ({error})",
                    hint="check SWITCHBOARD_OIDC_CLIENT_ID and the client secret",
                )
            answer.detail = "tokens issued"
            return document

    def _registration(self, provider: _Provider) -> Any:
        from core.oauth.storage import ClientRegistration

        offered = provider.metadata.token_endpoint_auth_methods_supported or ("client_secret_basic",)
        if self.settings.client_secret is None:
            method = "none"
        elif "client_secret_basic" in offered:
            method = "client_secret_basic"
        else:
            method = "client_secret_post"
        return ClientRegistration(
            issuer=provider.metadata.issuer,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            token_endpoint_auth_method=method,
            method="pre_registered",
        )

    async def _validated_claims(
        self, provider: _Provider, answer: dict[str, Any], nonce: str
    ) -> dict[str, Any]:
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import JoseError

        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("the identity provider sent no ID token", hint="is the `openid` scope allowed?")
        for refresh in (False, True):  # a key rotated since the last fetch: fetch the JWKS once more
            keys = await self._keys(provider, refresh=refresh)
            try:
                token = jwt.decode(id_token, keys, algorithms=list(provider.algorithms))
                break
            except JoseError as exc:
                if refresh:
                    raise SignInError(f"the ID token's signature does not verify ({exc.error})") from None
        claims = CodeIDToken(
            token.claims,
            token.header,
            options={
                "iss": {"essential": True, "value": provider.metadata.issuer},
                "aud": {"essential": True, "value": self.settings.client_id},
            },
            params={
                "nonce": nonce,
                "client_id": self.settings.client_id,
                "access_token": answer.get("access_token"),
            },
        )
        try:
            claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
        except JoseError as exc:
            raise SignInError(f"the ID token does not validate ({exc.error}: {exc.description})") from None
        if claims.get("nonce") != nonce:  # authlib checks it when present; it must be present
            raise SignInError("the ID token does not carry this sign-in's nonce")
        return dict(claims)

    async def _keys(self, provider: _Provider, *, refresh: bool) -> Any:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        if provider.keys is None or refresh:
            async with self.http.exchange(
                "signin_jwks", "GET", provider.jwks_uri, error=SignInError
            ) as answer:
                document = answer.json_object()
                if answer.status != 200 or document is None or not isinstance(document.get("keys"), list):
                    raise SignInError(f"the identity provider's JWKS answered HTTP {answer.status}")
                try:
                    provider.keys = KeySet.import_key_set(document)
                except (JoseError, ValueError, KeyError, TypeError):
                    raise SignInError("the identity provider's JWKS holds no usable key") from None
        return provider.keys

    def _remember(self, state: str, pending: _Pending) -> None:
        now = time.monotonic()
        for key in [k for k, p in self._pending.items() if p.expires_at < now]:
            del self._pending[key]
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
        self._pending[state] = pending


def _display_name(claims: Mapping[str, Any]) -> str:
    """What audit rows call an OIDC user: the email and the subject (the email alone can be reassigned)."""
    subject = str(claims.get("sub", ""))
    email = claims.get("email")
    return f"{email} ({subject})" if isinstance(email, str) and email else subject
