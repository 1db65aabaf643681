"""Which credential a (connector, agent) pair uses, and the transport's provider built for it.

`key_of` decides the credential by the connector's mode: shared → the connector's one credential;
per_agent → that agent's own, never another's and never the shared row (the store takes the key it
is given; this is the one place that decides it). `resolve_key` is the same for an agent's name. `read_inputs`
reads what the connector's auth scheme needs from the store (in the caller's store session), and
`Credentials.provider` builds the `CredentialProvider` through the scheme registry
(`core/auth_schemes.py`), wrapped so 401/403 answers land in the health view.

OAuth providers get the connector's OAuth settings (`settings`) and a pin callback: an operator's
client secret goes only to the authorization server pinned on the connector (`connectors.issuer`),
and the first one it is sent to becomes the pin — written to the store before the secret leaves,
whichever path (connect, sync, call) uses the credential first (#16.2).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core import oauth
from core.auth_schemes import ProviderInputs, auth_scheme
from core.errors import (
    AuthRequired,
    ConfigurationError,
    CredentialUnavailable,
    NeedsReauthorization,
    NotFoundError,
)
from core.mcp.auth import AuthChallenge, CredentialProvider
from core.oauth import CredentialKey
from core.public_url import client_metadata_url, dashboard_redirect_uri
from core.services.context import ServiceContext, new_attempt
from core.services.pool import ClientPool
from core.store.db import Store
from core.store.records import Connector

if TYPE_CHECKING:
    from core.mcp.client import McpClient


def resolve_key(store: Store, connector: Connector, agent: str | None, *, managing: bool) -> CredentialKey:
    """The credential a (connector, agent named `agent`) pair uses (call inside a store session);
    an unknown agent name is refused even for a shared connector (a typo must not pass silently)."""
    return key_of(connector, store.agents.named(agent).id if agent is not None else None, managing=managing)


def key_of(connector: Connector, agent_id: str | None, *, managing: bool) -> CredentialKey:
    """The credential a (connector, agent) pair uses. `managing`: the caller sets or removes a
    credential, so naming an agent for a shared connector is a mistake. The key's `agent_id` is also
    whose tool list the pair reads ('' for the shared one)."""
    if connector.credential_mode == "shared":
        if agent_id is not None and managing:
            raise ConfigurationError(
                f"connector {connector.name!r} uses one shared credential; do not name an agent",
                hint="drop --agent, or switch the connector to per_agent mode",
            )
        return CredentialKey(connector.id, "")
    if agent_id is None:
        raise ConfigurationError(
            f"connector {connector.name!r} uses per-agent credentials: name an agent",
            hint="pass --agent NAME (or choose an agent in the dashboard)",
        )
    return CredentialKey(connector.id, agent_id)


def list_owner(connector: Connector, agent: str | None) -> str | None:
    """Whose tool list a call or lookup reads: the agent's own for per_agent, else the shared one."""
    return agent if connector.credential_mode == "per_agent" else None


class Credentials:
    def __init__(self, context: ServiceContext, pool: ClientPool) -> None:
        self._context = context
        self.pool = pool

    async def client(
        self,
        connector: Connector,
        key: CredentialKey,
        stamp: tuple | None,
        inputs: ProviderInputs | None = None,
    ) -> McpClient:
        """The pooled client for this credential (`stamp`: the store's credential stamp, so a
        credential changed by another process gets a new client). `inputs`: already read, if so."""

        async def build() -> McpClient:
            from core.mcp.client import McpClient  # late: httpx2 loads only for commands that go online

            return McpClient(
                connector.url,
                http=self._context.http(),
                auth=self.provider(connector, key, inputs or await self.read(connector, key)),
                timeout=self._context.timeout,
                era_cache=self._context.era_cache,
            )

        return await self.pool.client((key, connector.url, stamp), build)

    async def key(self, connector: Connector, agent: str | None, *, managing: bool) -> CredentialKey:
        return await self._context.db(resolve_key, self._context.store, connector, agent, managing=managing)

    def read_inputs(self, connector: Connector, key: CredentialKey) -> ProviderInputs:
        """What building the provider needs from the store (call inside a store session)."""
        store, storage = self._context.store, self._context.oauth_storage
        scheme = auth_scheme(connector.auth_type)
        found: dict[str, Any] = {}
        try:
            if scheme.static_secret:
                found["secret"] = store.credentials.load_secret(key).reveal()
            elif scheme.authorization_server:
                if connector.has_client_secret:
                    found["client_secret"] = store.connectors.client_secret(connector.id).reveal()
                if scheme.browser and not storage.needs_reauth(key):
                    found["tokens"] = storage.load_tokens(key)
        except NotFoundError:
            pass
        except CredentialUnavailable as exc:
            found["unreadable"] = exc.message  # reported when the provider is built, like a 401
        return ProviderInputs(
            connector=connector.name,
            agent=store.agents.get(key.agent_id).name if key.agent_id else None,
            header_name=connector.header_name,
            client_id=connector.client_id,
            **found,
        )

    async def read(self, connector: Connector, key: CredentialKey) -> ProviderInputs:
        def read() -> ProviderInputs:
            with self._context.store.session():
                return self.read_inputs(connector, key)

        return await self._context.db(read)

    def provider(
        self, connector: Connector, key: CredentialKey, inputs: ProviderInputs
    ) -> CredentialProvider:
        """The transport's credential provider for `key`, from what `read_inputs` found."""
        scheme = auth_scheme(connector.auth_type)
        if not scheme.needs_credential:
            return scheme.provider(inputs)
        if inputs.unreadable:
            raise NeedsReauthorization(
                f"the stored credential for {connector.name} cannot be read: {inputs.unreadable}",
                hint="enter or authorize it again",
            )

        def oauth_provider(**own: Any) -> CredentialProvider:
            return oauth.OAuthProvider(
                self._context.oauth_storage,
                key,
                self.settings(connector, inputs.client_secret),
                # Refreshes and step-ups land in the auth trace, written in the background.
                http=self._context.oauth_http(_BackgroundTrace(self._context, key)),
                pin_issuer=lambda issuer: self.pin_issuer(connector.id, issuer),
                **own,
            )

        return _Recording(scheme.provider(replace(inputs, oauth=oauth_provider)), self._context, key)

    def settings(
        self, connector: Connector, client_secret: str | None, redirect_uri: str | None = None
    ) -> oauth.ConnectorSettings:
        """The connector's OAuth settings; a pre-registered client is pinned to `connector.issuer`."""
        pre_registered = connector.registration_method == "pre_registered" or connector.client_id is not None
        redirect_uri = redirect_uri or self._context.redirect_uri
        return oauth.ConnectorSettings(
            server_url=connector.url,
            redirect_uri=redirect_uri,
            # The published document names only the dashboard's callback, so the CLI's loopback
            # redirect registers the classic way.
            client_metadata_url=client_metadata_url() if redirect_uri == dashboard_redirect_uri() else None,
            client_id=connector.client_id if pre_registered else None,
            client_secret=client_secret if pre_registered else None,
            client_issuer=connector.issuer if pre_registered else None,
            allow_plain_pkce=connector.allow_plain_pkce,
        )

    async def read_settings(
        self, connector: Connector, redirect_uri: str | None = None
    ) -> oauth.ConnectorSettings:
        secret = None
        if connector.has_client_secret:
            secret = (
                await self._context.db(self._context.store.connectors.client_secret, connector.id)
            ).reveal()
        return self.settings(connector, secret, redirect_uri)

    async def pin_issuer(self, connector_id: str, issuer: str) -> str:
        """Pin `issuer` as the connector's authorization server unless one is pinned already (maybe by
        another process); returns the pinned one. Read and write in one store session (one lock hold)."""
        store = self._context.store

        def pin() -> str:
            with store.session():
                pinned = store.connectors.get(connector_id).issuer
                if pinned:
                    return pinned
                store.connectors.update(connector_id, issuer=issuer)
                return issuer

        return await self._context.db(pin)


class _BackgroundTrace:
    """Auth steps taken while serving a request (a refresh, a client_credentials token), written to
    the store in the background so the request never waits for the store lock. Each step is its own
    attempt in the trace."""

    def __init__(self, context: ServiceContext, key: CredentialKey) -> None:
        self._context, self._key = context, key

    def record(self, event: oauth.TraceEvent) -> None:
        self._context.db_later(self._context.store.auth_trace.record, self._key, new_attempt(), event)


class _Recording:
    """Wraps a credential provider to remember 401/403 answers for the health view."""

    def __init__(self, inner: CredentialProvider, context: ServiceContext, key: CredentialKey) -> None:
        self._inner, self._context, self._key = inner, context, key

    def __repr__(self) -> str:
        return f"_Recording({self._inner!r})"

    async def auth_headers(self) -> dict[str, str]:
        return await self._inner.auth_headers()

    async def handle_challenge(self, challenge: AuthChallenge) -> bool:
        store = self._context.store
        if challenge.status in (401, 403):
            self._context.db_later(store.credentials.record_rejection, self._key, challenge.status)
        try:
            return await self._inner.handle_challenge(challenge)
        except (AuthRequired, NeedsReauthorization) as exc:
            if challenge.status == 401:
                self._context.db_later(store.credentials.set_status, self._key, "needs_reauth", exc.message)
            raise
