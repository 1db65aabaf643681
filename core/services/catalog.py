"""The catalog: connectors (MCP servers) and agents — adding, changing and listing them (removing them
revokes their credentials first: `core/services/offboarding.py`).

A connector's URL is kept in canonical form (RFC 8707) and checked against the network policy; its
auth type must be a registered scheme (`core/auth_schemes.py`), and an API-key header name an RFC 9110
token. Changing or removing a connector or an agent retires the pooled clients that used it.
"""

from __future__ import annotations

from typing import Any

from core import oauth
from core.auth_schemes import auth_scheme, checked_header_name
from core.errors import ConfigurationError, SwitchboardError
from core.models import AgentInfo, ConnectorInfo
from core.services.context import ServiceContext
from core.services.pool import ClientPool


class Catalog:
    def __init__(self, context: ServiceContext, pool: ClientPool) -> None:
        self._context = context
        self._pool = pool

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
        canonical = self.checked_url(url)
        if auth_scheme(auth_type).header_name:
            header_name = checked_header_name(header_name)
        if client_secret and not client_id:
            raise ConfigurationError("a client secret needs its client id")
        connector = await self._context.db(
            self._context.store.connectors.create,
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
            changes["url"] = self.checked_url(changes["url"])
        if "scopes" in changes and isinstance(changes["scopes"], str):
            changes["scopes"] = changes["scopes"].split() or None
        if changes.get("client_id"):
            changes.setdefault("registration_method", "pre_registered")
        before = await self._context.connector(name)
        if auth_scheme(changes.get("auth_type", before.auth_type)).header_name and (
            "header_name" in changes or "auth_type" in changes
        ):
            changes["header_name"] = checked_header_name(changes.get("header_name", before.header_name))
        store = self._context.store
        connector = await self._context.db(store.connectors.update, before.id, **changes)
        if auth_scheme(before.auth_type).static_secret and oauth.origin(before.url) != oauth.origin(
            connector.url
        ):
            await self._context.db(store.credentials.delete_all, connector.id)
            connector = await self._context.connector_by_id(connector.id)
        await self._pool.forget(lambda key: key.connector_id == connector.id)
        return connector.info()

    async def list_connectors(self) -> list[ConnectorInfo]:
        return [c.info() for c in await self._context.db(self._context.store.connectors.list)]

    async def get_connector(self, name: str) -> ConnectorInfo:
        return (await self._context.connector(name)).info()

    async def add_agent(self, name: str, description: str = "") -> AgentInfo:
        name = (name or "").strip()
        if not name:
            raise ConfigurationError("an agent needs a name")
        return await self._context.db(self._context.store.agents.create, name, description)

    async def update_agent(self, name: str, description: str) -> AgentInfo:
        store = self._context.store
        agent = await self._context.db(store.agents.named, name)
        return await self._context.db(store.agents.describe, agent.id, description.strip())

    async def list_agents(self) -> list[AgentInfo]:
        return await self._context.db(self._context.store.agents.list)

    def checked_url(self, url: str) -> str:
        """The canonical server URL, allowed by the network policy."""
        try:
            canonical = oauth.canonical_resource((url or "").strip())
        except SwitchboardError:
            raise
        except ValueError as exc:
            raise ConfigurationError(f"not a usable server URL: {exc}") from None
        self._context.policy.check_url(canonical)
        return canonical
