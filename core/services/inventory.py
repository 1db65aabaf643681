"""Read-only views for the faces: the tool inventory, drift, credential health, audit and auth trace.

Everything here reads the store (the synced inventory, never the servers), so a listing costs one
store session whatever the number of servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from core.auth_schemes import auth_scheme
from core.errors import ConfigurationError
from core.models import CredentialInfo, ToolPage
from core.oauth import CredentialKey
from core.services.context import ServiceContext
from core.services.credentials import Credentials, list_owner

TOOL_FILTERS = frozenset({"read_only", "destructive", "drift"})


class Inventory:
    def __init__(self, context: ServiceContext, credentials: Credentials) -> None:
        self._context = context
        self._credentials = credentials

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
        unknown = set(filters) - TOOL_FILTERS
        if unknown:
            raise ConfigurationError(f"unknown tool filter(s): {', '.join(sorted(unknown))}")
        store = self._context.store

        def page() -> ToolPage:
            with store.session():
                return store.tools.page(
                    connector_id=store.connectors.named(connector).id if connector is not None else None,
                    agent_id=store.agents.named(agent).id if agent is not None else None,
                    search=search or None,
                    sort=sort,
                    descending=descending,
                    offset=max(0, offset),
                    limit=max(1, limit),
                    **filters,
                )

        return await self._context.db(page)

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
        connector_id, owner = await self._tool_list(connector, agent)
        return await self._context.db(self._context.store.tools.definition, connector_id, owner, tool)

    async def drift(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        connector_id, owner = await self._tool_list(connector, agent)
        report = await self._context.db(self._context.store.tools.drift, connector_id, owner)
        return [{"name": c.name, "change": c.change, "fields": list(c.fields)} for c in report.changes]

    async def _tool_list(self, connector: str, agent: str | None) -> tuple[str, str]:
        """(connector id, agent id or '') of the tool list a lookup as `agent` reads (`list_owner`)."""
        store = self._context.store

        def resolve() -> tuple[str, str]:
            with store.session():
                conn = store.connectors.named(connector)
                owner = list_owner(conn, agent)
                return conn.id, store.agents.named(owner).id if owner is not None else ""

        return await self._context.db(resolve)

    async def health(self) -> list[CredentialInfo]:
        return await self._context.db(self._context.store.credentials.health)

    async def credentials_for_agent(self, agent: str) -> list[CredentialInfo]:
        """Each per_agent connector's credential for this agent (status 'missing' when there is none),
        then the shared connectors the agent can use."""
        store = self._context.store
        agent_info = await self._context.db(store.agents.named, agent)

        def collect() -> list[CredentialInfo]:
            found = []
            with store.session():
                connectors = store.connectors.list()
                for per_agent in (True, False):
                    for conn in connectors:
                        if (conn.credential_mode == "per_agent") != per_agent:
                            continue
                        info = store.credentials.info(
                            CredentialKey(conn.id, agent_info.id if per_agent else "")
                        )
                        if info is None:
                            scheme = auth_scheme(conn.auth_type)
                            status = "missing" if scheme.needs_credential else "connected"
                            info = CredentialInfo(conn.name, None, scheme.credential_kind, status)
                        agent_name = agent_info.name if per_agent else None
                        found.append(replace(info, connector=conn.name, agent=agent_name))
            return found

        return await self._context.db(collect)

    async def audit(
        self, *, limit: int = 200, offset: int = 0, connector: str | None = None, agent: str | None = None
    ) -> list[dict[str, Any]]:
        """Tool calls, newest first."""
        store = self._context.store

        def entries() -> list[dict[str, Any]]:
            with store.session():
                return store.audit.list(
                    connector_id=store.connectors.named(connector).id if connector is not None else None,
                    agent_id=store.agents.named(agent).id if agent is not None else None,
                    limit=limit,
                    offset=offset,
                )

        return await self._context.db(entries)

    async def auth_trace(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        """The steps of the last connection attempt (discovery, registration, token), no secrets."""
        conn = await self._context.connector(connector)
        key = await self._credentials.key(conn, agent, managing=False)
        return await self._context.db(self._context.store.auth_trace.attempt, key)
