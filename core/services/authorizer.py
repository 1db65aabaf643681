"""How a credential is obtained and given up: a typed-in key checked against the server, OAuth in
one trip each way, and disconnect with revocation.

OAuth: the services read what the OAuth package needs — the connector's settings (the pinned
issuer, a pre-registered client) and the server's 401 challenge to an unauthenticated request (the
transport's business, which the OAuth package does not know) — and hand it down once:
`oauth.begin_authorization` returns the authorization to start together with what discovery and
registration found, which is kept on the connector (issuer, metadata, registration method);
`oauth.finish_authorization` takes the callback's parameters and returns whose authorization it was,
whether or not it succeeded. `oauth.enroll` is the first half alone, for Connect.

Every attempt's steps land in the auth trace (no secrets); a failure that is the server's state is
recorded on the connector.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from core import oauth
from core.auth_schemes import ProviderInputs, auth_scheme
from core.errors import (
    AuthError,
    AuthorizationError,
    AuthRequired,
    ConfigurationError,
    DiscoveryError,
    InsufficientScope,
    SwitchboardError,
)
from core.mcp.auth import NoAuth
from core.models import AuthorizationOutcome, ConnectOutcome, CredentialInfo, DiscoveryInfo
from core.rfc9110 import Challenge
from core.services.context import ServiceContext, attempt_of, new_attempt
from core.services.credentials import Credentials
from core.services.sync import SyncEngine
from core.store.records import Connector

log = logging.getLogger(__name__)

T = TypeVar("T")


class Authorizer:
    def __init__(self, context: ServiceContext, credentials: Credentials, syncs: SyncEngine) -> None:
        self._context = context
        self._credentials = credentials
        self._syncs = syncs

    # --- static keys ----------------------------------------------------------------------------

    async def set_secret(self, connector: str, secret: str, agent: str | None = None) -> CredentialInfo:
        """Store a bearer token / API key after checking the server accepts it; then sync tools."""
        conn = await self._context.connector(connector)
        scheme = auth_scheme(conn.auth_type)
        if not scheme.static_secret:
            raise ConfigurationError(
                f"connector {conn.name!r} uses {conn.auth_type} authentication, which takes no static key"
            )
        secret = (secret or "").strip()
        if not secret:
            raise ConfigurationError("the key is empty")
        key = await self._credentials.key(conn, agent, managing=True)
        header = scheme.provider(
            ProviderInputs(conn.name, agent, header_name=conn.header_name, secret=secret)
        )
        from core.mcp.client import McpClient  # late: only commands that go online need it

        probe = McpClient(
            conn.url,
            http=self._context.http(),
            auth=header,
            timeout=self._context.timeout,
            era_cache=self._context.era_cache,
        )
        try:
            await probe.connect()
        except AuthError:
            raise AuthRequired(f"{conn.name} rejected this key", hint="check the key and try again") from None
        finally:
            await probe.close()
        await self._context.db(self._context.store.credentials.save_secret, key, secret)
        await self._credentials.pool.forget(lambda k: k == key)
        await self._syncs.sync(conn.name, agent)
        return await self._context.db(self._context.store.credentials.info, key)

    # --- connect and OAuth ----------------------------------------------------------------------

    async def connect(self, connector: str, agent: str | None = None) -> ConnectOutcome:
        """none / bearer / api key / client_credentials: validate by syncing. oauth: discover and
        register, then report needs_auth with what discovery found (start_authorization next), or
        connected when the credential already has tokens."""
        conn = await self._context.connector(connector)
        key = await self._credentials.key(conn, agent, managing=True)
        scheme = auth_scheme(conn.auth_type)
        if scheme.requires_client and not conn.issuer:
            # Pin the authorization server (and keep its metadata) before the client secret is sent.
            await self._traced(key, lambda trace: self._enroll(conn, self._context.redirect_uri, trace))
        if not scheme.browser:
            result = await self._syncs.sync(conn.name, agent)
            status = "connected" if result.ok else (await self._context.connector_by_id(conn.id)).status
            tools = result.tools if result.ok else None
            return ConnectOutcome(conn.name, agent, status, tools=tools, message=result.error or "")
        enrollment = await self._traced(
            key, lambda trace: self._enroll(conn, self._context.redirect_uri, trace)
        )
        storage = self._context.oauth_storage
        tokens = await self._context.db(storage.load_tokens, key)
        connected = tokens is not None and not await self._context.db(storage.needs_reauth, key)
        return ConnectOutcome(
            conn.name,
            agent,
            "connected" if connected else "needs_auth",
            discovery=_discovery_info(enrollment),
            message="" if connected else "authorize in the browser to finish connecting",
        )

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
        return (
            await self._begin(connector, agent, redirect_uri or self._context.redirect_uri, return_to)
        ).url

    async def complete_authorization(self, params: Mapping[str, str]) -> AuthorizationOutcome:
        """Finish a browser callback. Never raises for a bad callback: the outcome says ok=False with
        a readable message and where to return the operator."""
        trace = oauth.MemoryTrace()
        finished = await oauth.finish_authorization(
            self._context.oauth_storage, params, http=self._context.oauth_http(trace)
        )
        key = finished.key
        if key is not None:
            await self._context.save_trace(key, trace, attempt_of(params.get("state") or ""))
        if finished.error is not None:
            if key is not None:
                await self._context.db(
                    self._context.store.connectors.update,
                    key.connector_id,
                    status="needs_auth",
                    last_error=str(finished.error),
                )
            return AuthorizationOutcome(
                ok=False, message=str(finished.error), return_to=finished.return_to or "/"
            )
        assert key is not None  # a successful callback names its credential
        await self._credentials.pool.forget(lambda k: k == key)
        conn = await self._context.connector_by_id(key.connector_id)
        store = self._context.store
        agent = (await self._context.db(store.agents.get, key.agent_id)).name if key.agent_id else None
        result = await self._syncs.sync(conn.name, agent)
        message = (
            f"{conn.name} connected" + (f" for {agent}" if agent else "") + f": {result.tools} tools"
            if result.ok
            else f"{conn.name} authorized, but the tool sync failed: {result.error}"
        )
        return AuthorizationOutcome(
            ok=result.ok,
            message=message,
            return_to=finished.return_to or "/",
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
        conn = await self._context.connector(connector)
        if not auth_scheme(conn.auth_type).browser:
            return await self.connect(connector, agent)
        await self._credentials.key(conn, agent, managing=True)
        async with oauth.LoopbackListener() as listener:
            authorization = await self._begin(conn.name, agent, listener.redirect_uri, "/")
            listener.expected_state = authorization.state
            if on_authorization_url is not None:
                on_authorization_url(authorization.url)
            params = await listener.wait(timeout)
        outcome = await self.complete_authorization(params)
        if outcome.connector is None:  # the authorization itself failed
            raise AuthorizationError(outcome.message)
        # Authorized; the message says whether the tool sync that followed worked.
        message = "" if outcome.ok else outcome.message
        return ConnectOutcome(conn.name, agent, "connected", tools=outcome.tools, message=message)

    async def disconnect(self, connector: str, agent: str | None = None) -> None:
        """Revoke (when the authorization server offers it) and delete the credential."""
        conn = await self._context.connector(connector)
        key = await self._credentials.key(conn, agent, managing=True)
        if auth_scheme(conn.auth_type).authorization_server:
            trace = oauth.MemoryTrace()
            try:
                settings = await self._credentials.read_settings(conn)
                await oauth.revoke(
                    self._context.oauth_storage, key, settings, http=self._context.oauth_http(trace)
                )
            except SwitchboardError as exc:
                # The operator asked to forget the credential: a failed revocation must not keep it.
                log.warning("revocation for %s failed: %s", conn.name, exc)
            finally:
                await self._context.save_trace(key, trace, new_attempt())
        await self._credentials.pool.forget(lambda k: k == key)
        await self._context.db(self._context.store.credentials.delete, key)

    # --- one trip down --------------------------------------------------------------------------

    async def _begin(
        self, connector: str, agent: str | None, redirect_uri: str, return_to: str
    ) -> oauth.Authorization:
        conn = await self._context.connector(connector)
        if not auth_scheme(conn.auth_type).browser:
            raise ConfigurationError(
                f"connector {conn.name!r} uses {conn.auth_type} authentication, not OAuth"
            )
        key = await self._credentials.key(conn, agent, managing=True)
        trace = oauth.MemoryTrace()
        authorization: oauth.Authorization | None = None
        try:
            authorization = await self._down(
                conn,
                redirect_uri,
                trace,
                lambda settings, challenge, http: oauth.begin_authorization(
                    self._context.oauth_storage,
                    key,
                    settings,
                    challenge=challenge,
                    scopes=tuple(conn.scopes) if conn.scopes else None,
                    return_to=return_to,
                    http=http,
                ),
            )
            await self._keep(conn, authorization.enrollment)
            return authorization
        finally:
            await self._context.save_trace(
                key, trace, attempt_of(authorization.state if authorization else "")
            )

    async def _enroll(self, conn: Connector, redirect_uri: str, trace: oauth.MemoryTrace) -> oauth.Enrollment:
        storage = self._context.oauth_storage
        enrollment = await self._down(
            conn,
            redirect_uri,
            trace,
            lambda settings, challenge, http: oauth.enroll(settings, storage, challenge=challenge, http=http),
        )
        await self._keep(conn, enrollment)
        return enrollment

    async def _down(
        self,
        conn: Connector,
        redirect_uri: str,
        trace: oauth.MemoryTrace,
        go: Callable[[oauth.ConnectorSettings, Challenge | None, oauth.OAuthHttp], Awaitable[T]],
    ) -> T:
        """Read the settings, probe the server's challenge, then make the one call into the OAuth
        package; a failure that is the server's state is recorded on the connector."""
        try:
            settings = await self._credentials.read_settings(conn, redirect_uri)
            challenge = await self._unauthenticated_challenge(conn)
            try:
                return await go(settings, challenge, self._context.oauth_http(trace))
            except DiscoveryError as exc:
                if challenge is None:
                    raise DiscoveryError(
                        f"{conn.name} does not advertise OAuth ({exc.message})",
                        hint="use bearer or API-key auth for this server",
                    ) from None
                raise
        except SwitchboardError as exc:
            await self._context.record_failure(conn, exc)
            raise

    async def _keep(self, conn: Connector, enrollment: oauth.Enrollment) -> None:
        """Keep what discovery and registration found on the connector (the issuer is the pin)."""
        discovery, metadata = enrollment.discovery, enrollment.discovery.metadata
        await self._context.db(
            self._context.store.connectors.update,
            conn.id,
            issuer=metadata.issuer,
            as_metadata=metadata.document or None,
            prm=_prm_document(discovery),
            registration_method=enrollment.registration.method,
            **({} if conn.client_id else {"client_id": None}),
        )

    async def _traced(self, key: oauth.CredentialKey, step: Callable[[oauth.MemoryTrace], Awaitable[T]]) -> T:
        trace = oauth.MemoryTrace()
        try:
            return await step(trace)
        finally:
            await self._context.save_trace(key, trace, new_attempt())

    async def _unauthenticated_challenge(self, conn: Connector) -> Challenge | None:
        """The server's 401 challenge to a request without credentials (it names the PRM URL and
        the scopes to ask for); None when the server lets us in without one."""
        from core.mcp.client import McpClient  # late: only commands that go online need it

        probe = McpClient(
            conn.url,
            http=self._context.http(),
            auth=NoAuth(),
            timeout=self._context.timeout,
            era_cache=self._context.era_cache,
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


def _discovery_info(enrollment: oauth.Enrollment) -> DiscoveryInfo:
    metadata = enrollment.discovery.metadata
    return DiscoveryInfo(
        resource=enrollment.discovery.resource,
        issuer=metadata.issuer,
        authorization_endpoint=metadata.authorization_endpoint,
        token_endpoint=metadata.token_endpoint,
        registration_method=enrollment.registration.method,
        scopes=enrollment.scopes,
        revocation_endpoint=metadata.revocation_endpoint,
    )
