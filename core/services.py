"""The one API the dashboard, the notebooks and the CLI call: `Switchboard`.

All methods are coroutines unless noted; connectors and agents are named by their unique names.
`agent=None` means "the shared credential". For a per_agent connector an agent is required; for a
shared one naming an agent is refused when managing credentials, but allowed for `call_tool` and
`tool_page` (the agent uses the shared credential; the audit row names the agent).

Store calls are short and synchronous; they run in a worker thread (`_db`) so the event loop never
waits on another process holding the store. Network calls go through `core.net`'s shared client,
which enforces the network policy (`SWITCHBOARD_ALLOW_HOSTS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from core import oauth
from core.errors import (
    AuthError,
    AuthorizationError,
    AuthRequired,
    ConfigurationError,
    CredentialUnavailable,
    DiscoveryError,
    InsufficientScope,
    NeedsReauthorization,
    NotFoundError,
    ProtocolError,
    RegistrationError,
    StoreError,
    SwitchboardError,
    TransportError,
)
from core.mcp.auth import AuthChallenge, CredentialProvider, NoAuth, StaticHeader
from core.mcp.client import McpClient
from core.mcp.negotiation import EraCache
from core.models import (
    STATIC_SECRET_AUTH_TYPES,
    AgentInfo,
    AuthorizationOutcome,
    CallOutcome,
    ConnectorInfo,
    ConnectOutcome,
    CredentialInfo,
    DiscoveryInfo,
    SyncResult,
    ToolPage,
)
from core.net import NetworkPolicy, shared_http_client
from core.oauth.rfc8252 import LoopbackListener
from core.oauth.rfc8707 import canonical_resource, origin
from core.oauth.storage import CredentialKey
from core.store.db import Store
from core.store.records import Connector
from core.validation import validate_arguments

log = logging.getLogger(__name__)

PUBLIC_URL_ENV = "SWITCHBOARD_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://localhost:5006"
CALLBACK_PATH = "/oauth/callback"


CLIENT_METADATA_PATH = "/oauth/client-metadata.json"


def _public_url() -> str:
    return os.environ.get(PUBLIC_URL_ENV, DEFAULT_PUBLIC_URL).rstrip("/")


def dashboard_redirect_uri() -> str:
    """The dashboard's OAuth callback, from SWITCHBOARD_PUBLIC_URL (never from a request's Host)."""
    return _public_url() + CALLBACK_PATH


def client_metadata_url() -> str | None:
    """Where the dashboard publishes Switchboard's client ID metadata document — only when it is
    served over https (an authorization server must be able to fetch it; A-14 requires https)."""
    public = _public_url()
    return public + CLIENT_METADATA_PATH if public.startswith("https://") else None


def client_metadata() -> dict[str, Any] | None:
    """The client ID metadata document the dashboard serves (None when not on https)."""
    url = client_metadata_url()
    if url is None:
        return None
    return oauth.client_metadata_document(
        url, client_name="Switchboard", redirect_uris=[dashboard_redirect_uri()], application_type="web"
    )


class Switchboard:
    def __init__(
        self,
        store: Store,
        *,
        policy: NetworkPolicy | None = None,
        operator: str = "operator",
        redirect_uri: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.policy = NetworkPolicy.from_env() if policy is None else policy
        self.operator = operator
        self.redirect_uri = redirect_uri or dashboard_redirect_uri()
        self.timeout = timeout
        self._oauth_storage = store.oauth_storage()
        self._era_cache = EraCache()  # which origins speak which MCP era, shared by every client here
        # One MCP client per event loop and (credential, url, credential stamp), so repeated calls reuse
        # the session; weak on the loop so a finished loop's clients go with it.
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def open(cls, store_path: str | None = None, **options: Any) -> Switchboard:
        """Open the store (SWITCHBOARD_STORE or the default path) and build the services (not async)."""
        return cls(Store.open(store_path), **options)

    async def aclose(self) -> None:
        here = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if here is None:
            return
        for client in [*here.clients.values(), *here.retiring]:
            await client.close()
        await asyncio.gather(*here.background)  # let health and trace writes land before the loop ends

    @property
    def _clients(self) -> dict[_ClientSlot, McpClient]:
        return self._here().clients

    def _here(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        if loop not in self._loop_clients:
            self._loop_clients[loop] = _LoopClients()
        return self._loop_clients[loop]

    # --- plumbing -------------------------------------------------------------------------------

    async def _db(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)

    def _db_later(self, function: Callable[..., Any], *args: Any) -> None:
        """A store write that the request in progress must not wait for (health bookkeeping, the auth
        trace of a refresh): done by a background task; a failure is logged, never raised."""

        async def write() -> None:
            try:
                await self._db(function, *args)
            except SwitchboardError as exc:
                log.warning("background store write failed: %s", exc)

        task = asyncio.get_running_loop().create_task(write())
        self._here().background.add(task)
        task.add_done_callback(self._here().background.discard)

    def _http(self) -> httpx2.AsyncClient:
        return shared_http_client(self.policy)

    async def _connector(self, name: str) -> Connector:
        return await self._db(self.store.get_connector, name)

    async def _key(self, connector: Connector, agent: str | None, *, managing: bool) -> CredentialKey:
        return await self._db(self._resolve_key, connector, agent, managing)

    def _resolve_key(self, connector: Connector, agent: str | None, managing: bool) -> CredentialKey:
        """The credential a (connector, agent) pair uses. `managing`: the caller sets or removes a
        credential, so naming an agent for a shared connector is a mistake worth reporting."""
        if connector.credential_mode == "shared":
            if agent is not None and managing:
                raise ConfigurationError(
                    f"connector {connector.name!r} uses one shared credential; do not name an agent",
                    hint="drop --agent, or switch the connector to per_agent mode",
                )
            if agent is not None:
                self.store.get_agent(agent)  # a typo must not pass silently
            return CredentialKey(connector.id, "")
        if agent is None:
            raise ConfigurationError(
                f"connector {connector.name!r} uses per-agent credentials: name an agent",
                hint="pass --agent NAME (or choose an agent in the dashboard)",
            )
        return self.store.resolve_credential(connector.id, agent)

    def _oauth_http(self, trace: oauth.MemoryTrace | None = None) -> oauth.OAuthHttp:
        return oauth.OAuthHttp(self._http(), trace)

    async def _save_trace(self, key: CredentialKey, trace: oauth.MemoryTrace, attempt: str) -> None:
        def write() -> None:
            with self.store.session():  # one lock hold for all the steps
                for event in trace.events:
                    self.store.record_auth_step(key, attempt, event)

        if trace.events:
            await self._db(write)

    async def _oauth_settings(
        self, connector: Connector, redirect_uri: str | None = None
    ) -> oauth.ConnectorSettings:
        secret = None
        if connector.has_client_secret:
            secret = (await self._db(self.store.connector_client_secret, connector.id)).reveal()
        return self._settings(connector, secret, redirect_uri)

    def _settings(
        self, connector: Connector, client_secret: str | None, redirect_uri: str | None = None
    ) -> oauth.ConnectorSettings:
        secret = client_secret
        pre_registered = connector.registration_method == "pre_registered" or connector.client_id is not None
        redirect_uri = redirect_uri or self.redirect_uri
        return oauth.ConnectorSettings(
            server_url=connector.url,
            redirect_uri=redirect_uri,
            # The published document names only the dashboard's callback, so the CLI's loopback
            # redirect registers the classic way.
            client_metadata_url=client_metadata_url() if redirect_uri == dashboard_redirect_uri() else None,
            client_id=connector.client_id if pre_registered else None,
            client_secret=secret if pre_registered else None,
            client_issuer=connector.issuer if pre_registered else None,
            allow_plain_pkce=connector.allow_plain_pkce,
        )

    def _material(self, connector: Connector, key: CredentialKey) -> _Material:
        """What building the credential provider needs from the store (call inside a session)."""
        material = _Material(agent=self.store.get_agent(key.agent_id).name if key.agent_id else None)
        try:
            if connector.auth_type in STATIC_SECRET_AUTH_TYPES:
                material.secret = self.store.load_secret(key).reveal()
            elif connector.auth_type in ("oauth", "client_credentials"):
                if connector.has_client_secret:
                    material.client_secret = self.store.connector_client_secret(connector.id).reveal()
                if connector.auth_type == "oauth" and not self._oauth_storage.needs_reauth(key):
                    material.tokens = self._oauth_storage.load_tokens(key)
        except NotFoundError:
            pass
        except CredentialUnavailable as exc:
            material.unreadable = exc.message
        return material

    def _provider(self, connector: Connector, key: CredentialKey, material: _Material) -> CredentialProvider:
        if connector.auth_type == "none":
            return NoAuth()
        if material.unreadable:
            raise NeedsReauthorization(
                f"the stored credential for {connector.name} cannot be read: {material.unreadable}",
                hint="enter or authorize it again",
            )
        if connector.auth_type in STATIC_SECRET_AUTH_TYPES:
            if material.secret is None:
                raise AuthRequired(
                    _missing_credential(connector, material.agent),
                    hint="enter the key (dashboard) or `switchboard credential set`",
                )
            header = (
                StaticHeader.bearer(material.secret)
                if connector.auth_type == "bearer"
                else StaticHeader.api_key(connector.header_name or "X-API-Key", material.secret)
            )
            return _Recording(header, self, key)
        settings = self._settings(connector, material.client_secret)
        credentials = None
        if connector.auth_type == "client_credentials":
            if not connector.client_id:
                raise ConfigurationError(
                    f"connector {connector.name!r} needs a client id for client_credentials",
                    hint="edit the connector and enter its client id and secret",
                )
            credentials = oauth.ClientCredentials(
                client_id=connector.client_id, client_secret=settings.client_secret
            )
        elif material.tokens is None:
            raise AuthRequired(
                _missing_credential(connector, material.agent),
                hint="use Connect in the dashboard or `switchboard connect`",
            )
        http = self._oauth_http(_BackgroundTrace(self, key))  # refreshes and step-ups land in the auth trace
        return _Recording(
            oauth.OAuthProvider(
                self._oauth_storage,
                key,
                settings,
                http=http,
                client_credentials=credentials,
                tokens=material.tokens,
            ),
            self,
            key,
        )

    def _read_material(self, connector: Connector, key: CredentialKey) -> _Material:
        with self.store.session():
            return self._material(connector, key)

    def _cached_clients(self) -> set[_ClientSlot]:
        """The (credential, url, stamp) slots this event loop already has a client for."""
        return set(self._clients)

    async def _client(
        self, connector: Connector, key: CredentialKey, stamp: tuple | None, material: _Material | None = None
    ) -> McpClient:
        """The cached client for this credential, unless the credential changed since (another
        process replaced or removed it: `stamp` differs), in which case the old one is closed."""
        slot = (key, connector.url, stamp)
        here = self._here()
        client = here.clients.get(slot)
        if client is None:
            # Concurrent first calls must share one client (one initialize, one session: C-10);
            # building the provider reads the store, so without the lock each caller made its own.
            async with here.locks.setdefault(slot, asyncio.Lock()):
                client = here.clients.get(slot)
                if client is None:
                    for stale in [s for s in here.clients if s[:2] == slot[:2]]:
                        await self._retire(here.clients.pop(stale))
                    material = material or await self._db(self._read_material, connector, key)
                    client = McpClient(
                        connector.url,
                        http=self._http(),
                        auth=self._provider(connector, key, material),
                        timeout=self.timeout,
                        era_cache=self._era_cache,
                    )
                    here.clients[slot] = client
        return client

    @contextlib.asynccontextmanager
    async def _using(self, client: McpClient) -> AsyncIterator[McpClient]:
        """Count a request in flight on `client`, so retiring it waits for the request to finish."""
        here = self._here()
        here.busy[client] = here.busy.get(client, 0) + 1
        try:
            yield client
        finally:
            here.busy[client] -= 1
            if not here.busy[client]:
                del here.busy[client]
                if client in here.retiring:
                    here.retiring.discard(client)
                    await client.close()

    async def _retire(self, client: McpClient) -> None:
        """Stop handing out `client` and close it once its requests in flight are done (a new
        authorization must not fail the calls already running; they reload the new tokens)."""
        here = self._here()
        if here.busy.get(client):
            here.retiring.add(client)
        else:
            await client.close()

    async def _forget_client(self, key: CredentialKey) -> None:
        for slot in [s for s in self._clients if s[0] == key]:
            await self._retire(self._clients.pop(slot))

    async def _forget_connector_clients(self, connector_id: str) -> None:
        for slot in [s for s in self._clients if s[0].connector_id == connector_id]:
            await self._retire(self._clients.pop(slot))

    # --- connectors -----------------------------------------------------------------------------

    async def add_connector(
        self,
        name: str,
        url: str,
        auth_type: str,
        credential_mode: str = "shared",
        header_name: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: str | None = None,
    ) -> ConnectorInfo:
        name = (name or "").strip()
        if not name:
            raise ConfigurationError("a connector needs a name")
        canonical = _canonical_server_url(url)
        self.policy.check_url(canonical)
        if auth_type == "api_key_header":
            header_name = (header_name or "").strip() or None
            if header_name is None:
                raise ConfigurationError("api_key_header auth needs a header name, e.g. X-API-Key")
            StaticHeader.api_key(header_name, "x")  # validates the name
        if client_secret and not client_id:
            raise ConfigurationError("a client secret needs its client id")
        connector = await self._db(
            self.store.create_connector,
            name,
            canonical,
            auth_type,
            credential_mode=credential_mode,
            header_name=header_name,
            scopes=scopes.split() if scopes else None,
            client_id=client_id or None,
            client_secret=client_secret or None,
            registration_method="pre_registered" if client_id else None,
        )
        return connector.info()

    async def update_connector(self, name: str, **changes: Any) -> ConnectorInfo:
        """Change a connector. Moving it to another origin forgets its bearer tokens and API keys:
        they were given for the old server and are never sent to a new one (OAuth tokens are bound
        to their resource already and simply stop being used)."""
        if "url" in changes:
            changes["url"] = _canonical_server_url(changes["url"])
            self.policy.check_url(changes["url"])
        if "scopes" in changes and isinstance(changes["scopes"], str):
            changes["scopes"] = changes["scopes"].split() or None
        if changes.get("client_id"):
            changes.setdefault("registration_method", "pre_registered")
        before = await self._connector(name)
        connector = await self._db(self.store.update_connector, name, **changes)
        if before.auth_type in STATIC_SECRET_AUTH_TYPES and origin(before.url) != origin(connector.url):
            await self._db(self.store.delete_credentials, connector.id)
            connector = await self._connector(connector.id)
        await self._forget_connector_clients(connector.id)
        return connector.info()

    async def remove_connector(self, name: str) -> None:
        connector = await self._connector(name)
        await self._forget_connector_clients(connector.id)
        await self._db(self.store.delete_connector, connector.id)

    async def list_connectors(self) -> list[ConnectorInfo]:
        return [c.info() for c in await self._db(self.store.list_connectors)]

    async def get_connector(self, name: str) -> ConnectorInfo:
        return (await self._connector(name)).info()

    # --- agents ---------------------------------------------------------------------------------

    async def add_agent(self, name: str, description: str = "") -> AgentInfo:
        name = (name or "").strip()
        if not name:
            raise ConfigurationError("an agent needs a name")
        return await self._db(self.store.create_agent, name, description)

    async def list_agents(self) -> list[AgentInfo]:
        return await self._db(self.store.list_agents)

    async def remove_agent(self, name: str) -> None:
        agent = await self._db(self.store.get_agent, name)
        for slot in [s for s in self._clients if s[0].agent_id == agent.id]:
            await self._retire(self._clients.pop(slot))
        await self._db(self.store.delete_agent, agent.id)

    # --- static credentials ---------------------------------------------------------------------

    async def set_secret(self, connector: str, secret: str, agent: str | None = None) -> CredentialInfo:
        """Store a bearer token / API key after checking the server accepts it; then sync tools."""
        conn = await self._connector(connector)
        if conn.auth_type not in STATIC_SECRET_AUTH_TYPES:
            raise ConfigurationError(
                f"connector {conn.name!r} uses {conn.auth_type} authentication, which takes no static key"
            )
        secret = (secret or "").strip()
        if not secret:
            raise ConfigurationError("the key is empty")
        key = await self._key(conn, agent, managing=True)
        header = (
            StaticHeader.bearer(secret)
            if conn.auth_type == "bearer"
            else StaticHeader.api_key(conn.header_name or "X-API-Key", secret)
        )
        probe = McpClient(
            conn.url, http=self._http(), auth=header, timeout=self.timeout, era_cache=self._era_cache
        )
        try:
            await probe.connect()
        except AuthError:
            raise AuthRequired(f"{conn.name} rejected this key", hint="check the key and try again") from None
        finally:
            await probe.close()
        await self._db(self.store.save_secret, key, secret)
        await self._forget_client(key)
        await self.sync(conn.name, agent)
        return await self._db(self.store.credential, key)

    # --- connection and OAuth -------------------------------------------------------------------

    async def connect(self, connector: str, agent: str | None = None) -> ConnectOutcome:
        """none / bearer / api key / client_credentials: validate by syncing. oauth: discover and
        register, then report needs_auth with what discovery found (start_authorization next), or
        connected when the credential already has tokens."""
        conn = await self._connector(connector)
        key = await self._key(conn, agent, managing=True)
        if conn.auth_type == "client_credentials" and not conn.issuer:
            # Pin the authorization server before the client secret is first sent anywhere.
            trace = oauth.MemoryTrace()
            try:
                await self._discover_and_register(conn, redirect_uri=self.redirect_uri, trace=trace)
            finally:
                await self._save_trace(key, trace, _new_attempt())
        if conn.auth_type != "oauth":
            result = await self.sync(conn.name, agent)
            status = "connected" if result.ok else (await self._connector(conn.id)).status
            return ConnectOutcome(
                conn.name,
                agent,
                status,
                tools=result.tools if result.ok else None,
                message=result.error or "",
            )
        trace = oauth.MemoryTrace()
        try:
            discovery, registration = await self._discover_and_register(
                conn, redirect_uri=self.redirect_uri, trace=trace
            )
        finally:
            await self._save_trace(key, trace, _new_attempt())
        tokens = await self._db(self._oauth_storage.load_tokens, key)
        connected = tokens is not None and not await self._db(self._oauth_storage.needs_reauth, key)
        return ConnectOutcome(
            conn.name,
            agent,
            "connected" if connected else "needs_auth",
            discovery=_discovery_info(discovery, registration),
            message="" if connected else "authorize in the browser to finish connecting",
        )

    async def _discover_and_register(self, conn: Connector, *, redirect_uri: str, trace: oauth.MemoryTrace):
        http = self._oauth_http(trace)
        try:
            challenge = await self._unauthenticated_challenge(conn)
            try:
                discovery = await oauth.discover(
                    conn.url,
                    challenge=challenge,
                    http=http,
                    preferred_issuer=conn.issuer if conn.client_id else None,
                )
            except DiscoveryError as exc:
                if challenge is None:
                    raise DiscoveryError(
                        f"{conn.name} does not advertise OAuth ({exc.message})",
                        hint="use bearer or API-key auth for this server",
                    ) from None
                raise
            settings = await self._oauth_settings(conn, redirect_uri)
            registration = await oauth.ensure_client(discovery, settings, self._oauth_storage, http=http)
        except SwitchboardError as exc:
            await self._record_failure(conn, exc)
            raise
        metadata = discovery.metadata
        await self._db(
            self.store.update_connector,
            conn.id,
            issuer=metadata.issuer,
            as_metadata=metadata.document or None,
            prm=_prm_document(discovery),
            registration_method=registration.method,
            **({} if conn.client_id else {"client_id": None}),
        )
        return discovery, registration

    async def _unauthenticated_challenge(self, conn: Connector):
        """The server's 401 challenge to a request without credentials (it names the PRM URL and
        the scopes to ask for); None when the server lets us in without one."""
        probe = McpClient(
            conn.url, http=self._http(), auth=NoAuth(), timeout=self.timeout, era_cache=self._era_cache
        )
        try:
            await probe.connect()
        except AuthRequired as exc:
            return next((c for c in exc.challenges if c.scheme == "bearer"), None)
        except InsufficientScope:
            return None
        finally:
            await probe.close()
        return None

    async def start_authorization(
        self,
        connector: str,
        agent: str | None = None,
        *,
        redirect_uri: str | None = None,
        return_to: str = "/",
    ) -> str:
        """Discover and register if needed, record a pending authorization, and return the URL to
        send the browser to (full-page navigation)."""
        conn = await self._connector(connector)
        if conn.auth_type != "oauth":
            raise ConfigurationError(
                f"connector {conn.name!r} uses {conn.auth_type} authentication, not OAuth"
            )
        key = await self._key(conn, agent, managing=True)
        redirect_uri = redirect_uri or self.redirect_uri
        trace = oauth.MemoryTrace()
        state = ""
        try:
            discovery, _ = await self._discover_and_register(conn, redirect_uri=redirect_uri, trace=trace)
            settings = await self._oauth_settings(await self._connector(conn.id), redirect_uri)
            url, state = await oauth.start_authorization(
                self._oauth_storage,
                key,
                settings,
                discovery=discovery,
                scopes=_configured_scopes(conn, discovery),
                return_to=return_to,
                http=self._oauth_http(trace),
            )
        finally:
            await self._save_trace(key, trace, _attempt_of(state))
        return url

    async def complete_authorization(self, params: Mapping[str, str]) -> AuthorizationOutcome:
        """Finish a browser callback. Never raises for a bad callback: the outcome says ok=False with
        a readable message and where to return the operator."""
        trace = oauth.MemoryTrace()
        state = params.get("state") or ""
        try:
            key, _tokens, return_to = await oauth.complete_authorization(
                self._oauth_storage, params, http=self._oauth_http(trace)
            )
        except SwitchboardError as exc:
            key = getattr(exc, "key", None)
            if key is not None:
                await self._save_trace(key, trace, _attempt_of(state))
                await self._db(
                    self.store.update_connector, key.connector_id, status="needs_auth", last_error=str(exc)
                )
            return AuthorizationOutcome(
                ok=False, message=str(exc), return_to=getattr(exc, "return_to", "") or "/"
            )
        await self._save_trace(key, trace, _attempt_of(state))
        await self._forget_client(key)
        conn = await self._connector(key.connector_id)
        agent = (await self._db(self.store.get_agent, key.agent_id)).name if key.agent_id else None
        result = await self.sync(conn.name, agent)
        message = (
            f"{conn.name} connected" + (f" for {agent}" if agent else "") + f": {result.tools} tools"
            if result.ok
            else f"{conn.name} authorized, but the tool sync failed: {result.error}"
        )
        return AuthorizationOutcome(
            ok=result.ok,
            message=message,
            return_to=return_to or "/",
            connector=conn.name,
            agent=agent,
            tools=result.tools if result.ok else None,
        )

    async def connect_cli(
        self,
        connector: str,
        agent: str | None = None,
        *,
        timeout: float = 300.0,
        on_authorization_url: Callable[[str], None] | None = None,
    ) -> ConnectOutcome:
        """Connect from a terminal. OAuth: the browser is sent back to a one-shot loopback listener on
        127.0.0.1 (RFC 8252), which completes the flow here."""
        conn = await self._connector(connector)
        if conn.auth_type != "oauth":
            return await self.connect(connector, agent)
        await self._key(conn, agent, managing=True)
        async with LoopbackListener() as listener:
            url = await self.start_authorization(conn.name, agent, redirect_uri=listener.redirect_uri)
            listener.expected_state = parse_qs(urlsplit(url).query)["state"][0]
            if on_authorization_url is not None:
                on_authorization_url(url)
            params = await listener.wait(timeout)
        outcome = await self.complete_authorization(params)
        if outcome.connector is None:  # the authorization itself failed
            raise AuthorizationError(outcome.message)
        # Authorized; the message says whether the tool sync that followed worked.
        return ConnectOutcome(
            conn.name, agent, "connected", tools=outcome.tools, message="" if outcome.ok else outcome.message
        )

    async def disconnect(self, connector: str, agent: str | None = None) -> None:
        """Revoke (when the authorization server offers it) and delete the credential."""
        conn = await self._connector(connector)
        key = await self._key(conn, agent, managing=True)
        if conn.auth_type in ("oauth", "client_credentials"):
            trace = oauth.MemoryTrace()
            try:
                settings = await self._oauth_settings(conn)
                await oauth.revoke(self._oauth_storage, key, settings, http=self._oauth_http(trace))
            except SwitchboardError as exc:
                # The operator asked to forget the credential: a failed revocation must not keep it.
                log.warning("revocation for %s failed: %s", conn.name, exc)
            finally:
                await self._save_trace(key, trace, _new_attempt())
        await self._forget_client(key)
        await self._db(self.store.delete_credential, key)

    # --- credential health ----------------------------------------------------------------------

    async def health(self) -> list[CredentialInfo]:
        return await self._db(self.store.credential_health)

    async def credentials_for_agent(self, agent: str) -> list[CredentialInfo]:
        """Each per_agent connector's credential for this agent (status 'missing' when there is none),
        then the shared connectors the agent can use."""
        agent_info = await self._db(self.store.get_agent, agent)

        def collect() -> list[CredentialInfo]:
            with self.store.session():
                return gather()

        def gather() -> list[CredentialInfo]:
            found = []
            connectors = self.store.list_connectors()
            for per_agent in (True, False):
                for conn in connectors:
                    if (conn.credential_mode == "per_agent") != per_agent:
                        continue
                    key = CredentialKey(conn.id, agent_info.id if per_agent else "")
                    info = self.store.credential(key)
                    if info is None:
                        info = CredentialInfo(
                            conn.name,
                            None,
                            _kind(conn.auth_type),
                            "connected" if conn.auth_type == "none" else "missing",
                        )
                    found.append(
                        replace(info, connector=conn.name, agent=agent_info.name if per_agent else None)
                    )
            return found

        return await self._db(collect)

    # --- tools ----------------------------------------------------------------------------------

    async def sync(self, connector: str, agent: str | None = None) -> SyncResult:
        """List the server's tools (all pages) with the credential and record a snapshot."""
        job = (await self._db(self._prepare_syncs, [(connector, agent)], self._cached_clients()))[0]
        if isinstance(job.error, ConfigurationError):
            raise job.error  # an operator mistake (unknown name, missing agent), not a failed sync
        if job.error is not None:
            return job.result(error=job.error)
        fetched = await self._fetch(job)
        return (await self._db(self._commit_syncs, [fetched]))[0]

    async def sync_many(
        self,
        connectors: list[str] | None = None,
        agent: str | None = None,
        *,
        concurrency: int = 64,
        on_start: Callable[[int], None] | None = None,
    ) -> AsyncIterator[SyncResult]:
        """Sync several connectors concurrently (at most `concurrency` fetches at once); yields each
        result as it is recorded. One failure never stops the others. `None` = every connector. A
        per_agent connector is synced as `agent` when one is named, else once per agent holding a
        credential.

        The store is touched in few, short sessions: one to prepare every job, then group commits —
        the snapshots of all fetches that finished while the previous commit ran are written together
        (a store session costs a DuckDB open; one per server made 200 servers 60 times slower)."""
        jobs = await self._db(self._plan_and_prepare, connectors, agent, self._cached_clients())
        if on_start is not None:
            on_start(len(jobs))
        for job in jobs:
            if job.error is not None:
                yield job.result(error=job.error)
        limit = asyncio.Semaphore(max(1, concurrency))
        finished: asyncio.Queue[_Fetched] = asyncio.Queue()

        async def fetch(job: _SyncJob) -> None:
            async with limit:
                finished.put_nowait(await self._fetch(job))

        tasks = [asyncio.create_task(fetch(job)) for job in jobs if job.error is None]
        try:
            remaining = len(tasks)
            while remaining:
                batch = [await finished.get()]
                while not finished.empty():
                    batch.append(finished.get_nowait())
                remaining -= len(batch)
                for result in await self._db(self._commit_syncs, batch):
                    yield result
        finally:
            for task in tasks:
                task.cancel()

    def _plan_and_prepare(
        self, connectors: list[str] | None, agent: str | None, cached: set[_ClientSlot]
    ) -> list[_SyncJob]:
        with self.store.session():
            return self._prepare_syncs(self._sync_jobs(connectors, agent), cached)

    def _sync_jobs(
        self, connectors: list[str] | None, agent: str | None
    ) -> list[tuple[str | Connector, str | None]]:
        known = {c.name: c for c in self.store.list_connectors()}
        names = list(known) if connectors is None else list(dict.fromkeys(connectors))
        holders: dict[str, list[str]] = {}
        if agent is None:
            for credential in self.store.credential_health():
                if credential.agent is not None:
                    holders.setdefault(credential.connector, []).append(credential.agent)
        jobs: list[tuple[str | Connector, str | None]] = []
        for name in names:
            conn = known.get(name)
            if conn is None:
                jobs.append((name, None))  # an unknown name still gets its own failed result
            elif conn.credential_mode == "shared":
                jobs.append((conn, None))
            elif agent is not None:
                jobs.append((conn, agent))
            else:
                jobs.extend((conn, holder) for holder in holders.get(name, []))
        return jobs

    def _prepare_syncs(
        self, jobs: list[tuple[str | Connector, str | None]], cached: set[_ClientSlot]
    ) -> list[_SyncJob]:
        """Resolve every job's connector, credential and provider material in one store session."""
        prepared = []
        with self.store.session():
            for connector, agent in jobs:
                job = _SyncJob(connector if isinstance(connector, str) else connector.name, agent)
                try:
                    job.connector = (
                        self.store.get_connector(connector) if isinstance(connector, str) else connector
                    )
                    job.key = self._resolve_key(job.connector, agent, False)
                    job.stamp = self.store.credential_stamp(job.key)
                    if (job.key, job.connector.url, job.stamp) not in cached:
                        job.material = self._material(job.connector, job.key)
                except SwitchboardError as exc:
                    job.error = exc
                prepared.append(job)
        return prepared

    async def _fetch(self, job: _SyncJob) -> _Fetched:
        started = time.perf_counter()
        assert job.connector is not None and job.key is not None
        try:
            client = await self._client(job.connector, job.key, job.stamp, job.material)
            async with self._using(client):
                return _Fetched(job, started, tools=await client.list_tools())
        except SwitchboardError as exc:
            return _Fetched(job, started, error=exc)
        except Exception as exc:  # a bug must fail one sync, not hang or abort the others
            log.exception("unexpected error syncing %s", job.name)
            return _Fetched(
                job, started, error=TransportError(f"unexpected {type(exc).__name__} while syncing")
            )

    def _commit_syncs(self, batch: list[_Fetched]) -> list[SyncResult]:
        """Record fetched tool lists as snapshots, and failures as connector status, in one session
        and one transaction; if the store fails the batch, each sync is committed on its own so one
        bad write cannot take the others with it."""
        try:
            with self.store.transaction():
                return self._record_syncs(batch)
        except StoreError:
            if len(batch) == 1:
                raise
            return [result for fetched in batch for result in self._commit_syncs([fetched])]

    def _record_syncs(self, batch: list[_Fetched]) -> list[SyncResult]:
        fetched_lists = [f for f in batch if f.error is None]
        recorded = dict(
            zip(
                map(id, fetched_lists),
                self.store.record_snapshots(
                    [
                        (
                            f.job.connector.id,
                            f.tools,
                            f.job.agent if f.job.connector.credential_mode == "per_agent" else None,
                        )
                        for f in fetched_lists
                    ]
                ),
                strict=True,
            )
        )
        results = []
        for fetched in batch:
            job, outcome = fetched.job, recorded.get(id(fetched), fetched.error)
            if isinstance(outcome, NotFoundError):
                # Removed while its tools were being fetched: nothing to record it against.
                results.append(
                    job.result(
                        error=NotFoundError(f"{job.name} was removed during the sync"),
                        started=fetched.started,
                    )
                )
                continue
            if isinstance(outcome, ConfigurationError):
                # The store refused the list itself (e.g. a tool without a name): the server's fault,
                # recorded like any other failed sync, not reported as an operator mistake.
                outcome = ProtocolError(f"{job.connector.name} sent an invalid tool list: {outcome.message}")
            if isinstance(outcome, SwitchboardError):
                status = _failure_status(job.connector, outcome)
                if status is not None:
                    self.store.update_connector(job.connector.id, status=status, last_error=str(outcome))
                results.append(job.result(error=outcome, started=fetched.started))
            else:
                results.append(
                    job.result(tools=outcome.tool_count, changed=outcome.drifted, started=fetched.started)
                )
        return results

    async def _record_failure(self, conn: Connector, exc: SwitchboardError) -> None:
        status = _failure_status(conn, exc)
        if status is not None:
            await self._db(self.store.update_connector, conn.id, status=status, last_error=str(exc))

    async def tool_page(
        self,
        *,
        connector: str | None = None,
        agent: str | None = None,
        search: str | None = None,
        filters: Mapping[str, Any] | None = None,
        sort: str = "connector",
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> ToolPage:
        """One page of the tool inventory. Row keys: connector, agent, name, title, description,
        parameter_count, read_only, destructive, last_changed_at, drift. `filters` may hold
        read_only, destructive, drift (booleans)."""
        filters = dict(filters or {})
        unknown = set(filters) - {"read_only", "destructive", "drift"}
        if unknown:
            raise ConfigurationError(f"unknown tool filter(s): {', '.join(sorted(unknown))}")
        return await self._db(
            self.store.tool_page,
            connector=connector,
            agent=agent,
            search=search or None,
            sort=sort,
            descending=descending,
            offset=max(0, offset),
            limit=max(1, limit),
            **filters,
        )

    async def tool_list(self, connector: str | None = None, agent: str | None = None) -> list[dict[str, Any]]:
        """Every current tool (CLI `tools`): connector, agent (None when shared), name, description."""
        rows, offset = [], 0
        while True:
            page = await self.tool_page(connector=connector, agent=agent, offset=offset, limit=500)
            rows.extend(
                {
                    "connector": r["connector"],
                    "agent": r.get("agent") or None,
                    "name": r["name"],
                    "title": r.get("title"),
                    "description": r.get("description"),
                }
                for r in page.rows
            )
            offset += len(page.rows)
            if not page.rows or offset >= page.total:
                return rows

    async def tool_definition(self, connector: str, tool: str, agent: str | None = None) -> dict[str, Any]:
        conn = await self._connector(connector)
        owner = agent if conn.credential_mode == "per_agent" else None
        return await self._db(self.store.tool_definition, conn.id, tool, owner)

    async def drift(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        conn = await self._connector(connector)
        owner = agent if conn.credential_mode == "per_agent" else None
        report = await self._db(self.store.drift, conn.id, owner)
        return [{"name": c.name, "change": c.change, "fields": list(c.fields)} for c in report.changes]

    async def call_tool(
        self, connector: str, tool: str, arguments: Mapping[str, Any], agent: str | None = None
    ) -> CallOutcome:
        """Validate the arguments against the tool's inputSchema, call it with the credential the
        agent uses, and append the call to the audit log (arguments redacted)."""
        call = await self._db(self._call_context, connector, tool, agent)
        client = await self._client(
            call.connector, call.key, call.stamp
        )  # first: a missing credential is clearest
        definition = call.definition or await self._definition_after_sync(call.connector, tool, agent)
        validate_arguments(tool, definition.get("inputSchema"), arguments)
        audit = {
            "connector_id": call.connector.id,
            "tool": tool,
            "agent_id": call.agent_id,
            "operator": self.operator,
            "arguments": dict(arguments),
        }
        started = time.perf_counter()
        try:
            async with self._using(client):
                result = await client.call_tool(tool, dict(arguments))
        except SwitchboardError as exc:
            if isinstance(exc, AuthError):
                await self._record_failure(call.connector, exc)
            await self._db(
                self._audit_call,
                call.key,
                status="error",
                error=str(exc)[:500],
                latency_ms=(time.perf_counter() - started) * 1000,
                **audit,
            )
            raise
        latency = (time.perf_counter() - started) * 1000
        await self._db(
            self._audit_call,
            call.key,
            status="tool_error" if result.is_error else "ok",
            latency_ms=latency,
            **audit,
        )
        return CallOutcome(
            call.connector.name, agent, tool, result=result.raw, is_error=result.is_error, latency_ms=latency
        )

    def _call_context(self, connector: str, tool: str, agent: str | None) -> _CallContext:
        """Everything a call needs from the store, read in one session (each session costs a DuckDB open)."""
        with self.store.session():
            conn = self.store.get_connector(connector)
            key = self._resolve_key(conn, agent, False)
            agent_id = key.agent_id or (self.store.get_agent(agent).id if agent else "")
            owner = agent if conn.credential_mode == "per_agent" else None
            try:
                definition = self.store.tool_definition(conn.id, tool, owner)
            except NotFoundError:
                definition = None
            stamp = self.store.credential_stamp(key)
        return _CallContext(conn, key, agent_id, definition, stamp)

    async def _definition_after_sync(self, conn: Connector, tool: str, agent: str | None) -> dict[str, Any]:
        # Never synced (e.g. a per-agent connector this agent just connected): sync once, then judge.
        owner = agent if conn.credential_mode == "per_agent" else None
        await self.sync(conn.name, owner)
        return await self._db(self.store.tool_definition, conn.id, tool, owner)

    def _audit_call(self, key: CredentialKey, **entry: Any) -> None:
        # The call already happened: a store that cannot take the audit row must not turn its result
        # into an error (an operator might run a destructive tool twice). Logged loudly instead.
        try:
            with self.store.session():
                info = self.store.credential(key)
                self.store.record_call(credential_fingerprint=info.fingerprint if info else None, **entry)
        except StoreError as exc:
            log.error("could not write the audit row for %s: %s", entry.get("tool"), exc)

    # --- observability --------------------------------------------------------------------------

    async def audit(
        self, *, limit: int = 200, offset: int = 0, connector: str | None = None, agent: str | None = None
    ) -> list[dict[str, Any]]:
        """Tool calls, newest first."""
        return await self._db(self.store.audit, connector=connector, agent=agent, limit=limit, offset=offset)

    async def auth_trace(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        """The steps of the last connection attempt (discovery, registration, token), no secrets."""
        conn = await self._connector(connector)
        key = await self._key(conn, agent, managing=False)
        return await self._db(self.store.auth_trace, key)

    async def rotate_key(self) -> dict[str, Any]:
        report = await self._db(self.store.rotate_key)
        return {
            "key_id": report.active_key,
            "reencrypted": report.reencrypted,
            "unreadable": report.unreadable,
            "retired": list(report.retired),
            "still_used": list(report.still_used),
        }


_ClientSlot = tuple[CredentialKey, str, "tuple | None"]


@dataclass
class _LoopClients:
    clients: dict[_ClientSlot, McpClient] = field(default_factory=dict)
    locks: dict[_ClientSlot, asyncio.Lock] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)  # store writes still running
    busy: dict[McpClient, int] = field(default_factory=dict)  # requests in flight per client
    retiring: set[McpClient] = field(default_factory=set)  # out of the cache, closed when idle


@dataclass
class _Material:
    """What building a credential provider needs from the store, read in one session."""

    agent: str | None = None
    secret: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    tokens: oauth.TokenSet | None = None
    unreadable: str | None = None


@dataclass
class _SyncJob:
    name: str
    agent: str | None
    connector: Connector | None = None
    key: CredentialKey | None = None
    stamp: tuple | None = None
    material: _Material | None = None
    error: SwitchboardError | None = None

    def result(
        self,
        *,
        error: SwitchboardError | None = None,
        tools: int = 0,
        changed: int = 0,
        started: float | None = None,
    ) -> SyncResult:
        duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        name = self.connector.name if self.connector else self.name
        return SyncResult(
            name,
            self.agent,
            ok=error is None,
            tools=tools,
            changed=changed,
            error=str(error) if error else None,
            duration_ms=duration,
        )


@dataclass
class _Fetched:
    job: _SyncJob
    started: float
    tools: list[dict[str, Any]] = field(default_factory=list)
    error: SwitchboardError | None = None


def _failure_status(conn: Connector, exc: SwitchboardError) -> str | None:
    """The connector status a failure leaves behind, or None when it is not the connector's state."""
    if isinstance(exc, AuthError) and conn.credential_mode == "per_agent":
        return None  # one agent's credential problem is that credential's state, not the connector's
    if isinstance(exc, InsufficientScope):
        return None  # the credential works; one operation wants more scope
    if isinstance(exc, DiscoveryError | RegistrationError):
        return "error"  # the server's OAuth setup is at fault, not a missing or expired credential
    return "needs_auth" if isinstance(exc, AuthError) else "error"


class _BackgroundTrace:
    """Auth steps taken while serving a request (a refresh, a client_credentials token), written to
    the store in the background so the request never waits for the store lock. Each step is its own
    attempt in the trace."""

    def __init__(self, service: Switchboard, key: CredentialKey) -> None:
        self._service, self._key = service, key

    def record(self, event: oauth.TraceEvent) -> None:
        self._service._db_later(self._service.store.record_auth_step, self._key, _new_attempt(), event)


@dataclass(frozen=True)
class _CallContext:
    connector: Connector
    key: CredentialKey
    agent_id: str
    definition: dict[str, Any] | None
    stamp: tuple | None


class _Recording:
    """Wraps a credential provider to remember 401/403 answers for the health view."""

    def __init__(self, inner: CredentialProvider, service: Switchboard, key: CredentialKey) -> None:
        self._inner, self._service, self._key = inner, service, key

    def __repr__(self) -> str:
        return f"_Recording({self._inner!r})"

    async def auth_headers(self) -> dict[str, str]:
        return await self._inner.auth_headers()

    async def handle_challenge(self, challenge: AuthChallenge) -> bool:
        if challenge.status in (401, 403):
            self._service._db_later(self._service.store.record_rejection, self._key, challenge.status)
        try:
            return await self._inner.handle_challenge(challenge)
        except (AuthRequired, NeedsReauthorization) as exc:
            if challenge.status == 401:
                self._service._db_later(
                    self._service.store.set_credential_status, self._key, "needs_reauth", exc.message
                )
            raise


# --- helpers ------------------------------------------------------------------------------------


def _canonical_server_url(url: str) -> str:
    try:
        return canonical_resource((url or "").strip())
    except SwitchboardError:
        raise
    except ValueError as exc:
        raise ConfigurationError(f"not a usable server URL: {exc}") from None


def _configured_scopes(conn: Connector, discovery: oauth.Discovery) -> tuple[str, ...] | None:
    from core.oauth.flow import requested_scopes

    return requested_scopes(discovery, tuple(conn.scopes)) if conn.scopes else None


def _prm_document(discovery: oauth.Discovery) -> dict[str, Any] | None:
    prm = discovery.protected_resource
    if prm is None:
        return None
    return {
        "resource": prm.resource,
        "authorization_servers": list(prm.authorization_servers),
        "scopes_supported": list(prm.scopes_supported) if prm.scopes_supported is not None else None,
        "source_url": prm.source_url,
    }


def _discovery_info(discovery: oauth.Discovery, registration: oauth.ClientRegistration) -> DiscoveryInfo:
    metadata = discovery.metadata
    from core.oauth.flow import requested_scopes

    return DiscoveryInfo(
        resource=discovery.resource,
        issuer=metadata.issuer,
        authorization_endpoint=metadata.authorization_endpoint,
        token_endpoint=metadata.token_endpoint,
        registration_method=registration.method,
        scopes=requested_scopes(discovery),
        revocation_endpoint=metadata.revocation_endpoint,
    )


def _kind(auth_type: str) -> str:
    return {"api_key_header": "api_key"}.get(auth_type, auth_type)


def _missing_credential(conn: Connector, agent: str | None) -> str:
    if agent:
        return f"agent {agent} has no credential for {conn.name}"
    return f"{conn.name} has no shared credential yet"


def _attempt_of(state: str) -> str:
    # The trace of one authorization spans two requests (start, callback), maybe two processes: name
    # the attempt by a hash of its state so both halves land together without storing the state.
    return hashlib.sha256(state.encode()).hexdigest()[:16] if state else _new_attempt()


def _new_attempt() -> str:
    return os.urandom(8).hex()
