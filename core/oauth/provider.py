"""`OAuthProvider`: the transport's `CredentialProvider` for one OAuth credential (connector, agent).

Before each request it hands out the stored access token — refreshing it first when it is about to
expire — but only if the token was issued for this server's resource (A-29). On a 401 it refreshes
once (the same single-flight refresh as everywhere) and asks for one retry; a 401 for the token that
refresh just produced, on its first use, means the grant is dead: the credential is marked as needing
re-authorization and `NeedsReauthorization` is raised (headless mode re-authorizes once instead). On a 403 `insufficient_scope` it steps up to
the union of the granted and the challenged scopes, at most `MAX_STEP_UPS` times per (resource,
operation); any other 403 is the server's final word.

Interactive (dashboard) mode raises — `AuthRequired`, `NeedsReauthorization`, or `InsufficientScope`
carrying the union scopes — so the caller can send the operator through `start_authorization`.
Headless mode (tests, conformance, `client_credentials` agents) authorizes inline instead: re-discovery
with the new challenge (the AS may have changed, A-07), then `authorize_headless` or the
client_credentials grant, one at a time per credential.

Which token the failing request carried is remembered per task (a context variable set by
`auth_headers`), so concurrent requests that fail with an already replaced token just retry.

An operator's client secret (client_credentials, or a pre-registered client in headless mode) is sent
only to the authorization server it was pinned to (`settings.client_issuer`). Without a pin, the
first issuer discovery finds becomes the pin before the secret is sent — through `pin_issuer`, which
persists it (the services write it to the connector, so every later process sees it) and returns the
issuer actually pinned (another process may have pinned first) — and a later discovery naming
another authorization server is refused (A-16, #16.2).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import replace

from core.errors import AuthRequired, InsufficientScope, NeedsReauthorization, RegistrationError
from core.mcp.auth import AuthChallenge
from core.oauth._http import OAuthHttp
from core.oauth.client_credentials import ClientCredentials, client_credentials_token
from core.oauth.flow import ConnectorSettings, authorize_headless, discover, requested_scopes
from core.oauth.rfc8707 import canonical_resource, resource_matches
from core.oauth.storage import CredentialKey, OAuthStorage, TokenSet
from core.oauth.tokens import credential_lock, load_tokens, needs_refresh, refresh_tokens
from core.rfc9110 import Challenge

MAX_STEP_UPS = 3

_sent_token: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "switchboard_oauth_sent_token", default=None
)


class OAuthProvider:
    def __init__(
        self,
        storage: OAuthStorage,
        key: CredentialKey,
        settings: ConnectorSettings,
        *,
        http: OAuthHttp | None = None,
        headless: bool = False,
        client_credentials: ClientCredentials | None = None,
        tokens: TokenSet | None = None,
        pin_issuer: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        """`tokens`: the credential's tokens when the caller already read them (saves a store read).
        `pin_issuer`: persists the first issuer a client secret goes to (see the module docstring)."""
        self.storage = storage
        self.key = key
        self.settings = settings
        self.http = http or OAuthHttp()
        self.headless = headless or client_credentials is not None
        self.client_credentials = client_credentials
        self._server = canonical_resource(settings.server_url)
        self._tokens: TokenSet | None = self._usable(tokens)
        self._loaded = tokens is not None
        # The token obtained by the last 401-triggered refresh, and how often it was handed out since.
        # Rejected after a single use (the retry), the refresh did not help; used more often, it
        # worked for other requests and has expired since, so refreshing again is right.
        self._after_401: tuple[str, int] | None = None
        self._step_ups: dict[tuple[str, str], int] = {}
        self._issuer = settings.client_issuer  # where the operator's client secret may go
        self._pin_issuer = pin_issuer

    def __repr__(self) -> str:
        return f"OAuthProvider(key={self.key!r}, server={self._server!r}, headless={self.headless})"

    # --- CredentialProvider ---------------------------------------------------------------------------

    async def auth_headers(self) -> dict[str, str]:
        tokens = await self._current()
        if tokens is not None and needs_refresh(tokens):
            tokens = await self._refresh_ahead(tokens)
        _sent_token.set(tokens.access_token if tokens else None)
        if tokens is not None and self._after_401 is not None and self._after_401[0] == tokens.access_token:
            self._after_401 = (tokens.access_token, self._after_401[1] + 1)
        return {"Authorization": f"Bearer {tokens.access_token}"} if tokens else {}

    async def handle_challenge(self, challenge: AuthChallenge) -> bool:
        if challenge.status == 401:
            return await self._unauthorized(challenge)
        bearer = challenge.bearer()
        if challenge.status == 403 and bearer is not None and bearer.get("error") == "insufficient_scope":
            return await self._step_up(challenge, bearer)
        return False

    # --- tokens ---------------------------------------------------------------------------------------

    async def _current(self, *, reload: bool = False) -> TokenSet | None:
        if reload or not self._loaded:
            tokens = await load_tokens(self.storage, self.key)
            if tokens is not None and await asyncio.to_thread(self.storage.needs_reauth, self.key):
                tokens = None
            self._tokens, self._loaded = self._usable(tokens), True
        return self._tokens

    def _usable(self, tokens: TokenSet | None) -> TokenSet | None:
        # A token is only ever sent to the resource it was issued for.
        if tokens is not None and not (tokens.resource and resource_matches(tokens.resource, self._server)):
            return None
        return tokens

    async def _refresh_ahead(self, tokens: TokenSet) -> TokenSet | None:
        try:
            if self.client_credentials is not None:
                return await self._client_credentials(tokens)
            if not tokens.refresh_token:
                return tokens  # nothing to refresh with: use it until the server says 401
            self._tokens = await refresh_tokens(
                self.storage, self.key, self.http, await self._registration(tokens), stale=tokens
            )
            return self._tokens
        except NeedsReauthorization:
            self._tokens = None
            return None  # the request goes out without a token; its 401 leads to re-authorization

    async def _registration(self, tokens: TokenSet):
        registration = await asyncio.to_thread(self.storage.client_by_id, tokens.issuer, tokens.client_id)
        if registration is None or registration.client_id != tokens.client_id:
            raise NeedsReauthorization(
                "the client registration of this credential is gone", hint="authorize again"
            )
        return registration

    async def _unauthorized(self, challenge: AuthChallenge) -> bool:
        sent = _sent_token.get()
        current = await self._current(reload=True)
        if current is not None and current.access_token != sent:
            return True  # replaced since that request was sent (another request refreshed it): retry
        if current is None:
            return await self._authorize(challenge, "this server needs authorization", first=sent is None)
        if self.client_credentials is not None:
            if self._rejected_right_after_refresh(sent):
                raise NeedsReauthorization("the server rejects tokens from the client_credentials grant")
            self._after_401 = ((await self._client_credentials(current)).access_token, 0)
            return True
        if self._rejected_right_after_refresh(sent) or not current.refresh_token:
            await asyncio.to_thread(
                self.storage.mark_needs_reauth,
                self.key,
                expected_version=current.version,
                reason="the server rejected the access token",
            )
            return await self._authorize(challenge, "the server rejected the access token")
        try:
            fresh = await refresh_tokens(
                self.storage,
                self.key,
                self.http,
                await self._registration(current),
                stale=current,
                rejected=True,
            )
        except NeedsReauthorization as exc:
            return await self._authorize(challenge, exc.message)
        self._tokens = fresh
        self._after_401 = (fresh.access_token, 0)
        return True

    def _rejected_right_after_refresh(self, sent: str | None) -> bool:
        return self._after_401 is not None and self._after_401[0] == sent and self._after_401[1] <= 1

    async def _client_credentials(self, stale: TokenSet | None) -> TokenSet:
        async with credential_lock(self.storage, self.key):
            return await self._client_credentials_locked(stale)

    async def _client_credentials_locked(self, stale: TokenSet | None) -> TokenSet:
        assert self.client_credentials is not None
        current = await self._current(reload=True)
        if (
            current is not None
            and current.access_token != (stale.access_token if stale else None)
            and not needs_refresh(current)
        ):
            return current  # another request got a new token while we waited
        discovery = await discover(self.settings.server_url, http=self.http, preferred_issuer=self._issuer)
        await self._pinned(discovery.issuer)
        tokens = await client_credentials_token(discovery, self.client_credentials, http=self.http)
        self._tokens = await asyncio.to_thread(
            self.storage.save_tokens, self.key, tokens, expected_version=None
        )
        return self._tokens

    # --- (re-)authorization ---------------------------------------------------------------------------

    async def _authorize(
        self,
        challenge: AuthChallenge,
        reason: str,
        *,
        first: bool = False,
        scopes: tuple[str, ...] | None = None,
    ) -> bool:
        if not self.headless:
            if first:
                raise AuthRequired(
                    f"{reason}: authorize this connector",
                    challenges=challenge.challenges,
                    hint="use Authorize in the dashboard or `switchboard authorize`",
                )
            raise NeedsReauthorization(reason, hint="authorize this connector again")
        sent = _sent_token.get()
        async with credential_lock(self.storage, self.key):
            current = await self._current(reload=True)
            if current is not None and current.access_token != sent and scopes is None:
                return True  # another request authorized while this one waited
            if self.client_credentials is not None:
                await self._client_credentials_locked(current)
                return True
            discovery = await discover(
                self.settings.server_url,
                challenge=challenge.bearer(),
                http=self.http,
                preferred_issuer=self._issuer,
            )
            settings = self.settings
            if settings.client_id and settings.client_secret:  # a pre-registered client's secret
                settings = replace(settings, client_issuer=await self._pinned(discovery.issuer))
            self._tokens = await authorize_headless(
                self.storage,
                self.key,
                settings,
                discovery=discovery,
                scopes=requested_scopes(discovery, scopes),
                http=self.http,
            )
            return True

    async def _pinned(self, issuer: str) -> str:
        """The issuer the client secret may go to, pinning `issuer` when there is none yet; raises
        `RegistrationError` when the server now names another authorization server."""
        if self._issuer is None:
            self._issuer = await self._pin_issuer(issuer) if self._pin_issuer else issuer
        if issuer != self._issuer:
            # The client secret authenticates us at the token endpoint: never to an AS the server
            # now names instead of the one the client was first used with.
            raise RegistrationError(
                f"the server now names the authorization server {issuer}, but this client is "
                f"registered at {self._issuer}; its secret is not sent there",
                hint="check the server's configuration, then update the connector",
            )
        return self._issuer

    async def _step_up(self, challenge: AuthChallenge, bearer: Challenge) -> bool:
        operation = (self._server, challenge.method)
        attempts = self._step_ups.get(operation, 0)
        current = await self._current()
        granted = current.scopes if current else ()
        wanted = tuple(dict.fromkeys((*granted, *(bearer.get("scope") or "").split())))
        if self.client_credentials is not None or attempts >= MAX_STEP_UPS:
            raise InsufficientScope(
                f"the server requires scopes this credential does not have ({' '.join(wanted) or 'unspecified'})"
                + (f" and still refused after {attempts} re-authorizations" if attempts else ""),
                scopes=wanted,
                challenges=challenge.challenges,
                hint="ask the server's administrator to grant these scopes to the client",
            )
        self._step_ups[operation] = attempts + 1
        if not self.headless:
            raise InsufficientScope(
                f"this operation needs more scopes: {' '.join(wanted)}",
                scopes=wanted,
                challenges=challenge.challenges,
                hint="authorize again with these scopes",
            )
        return await self._authorize(challenge, "step-up authorization", scopes=wanted)
