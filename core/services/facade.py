"""`Switchboard`: the one API of the dashboard, the notebooks and the CLI — a thin facade.

All methods are coroutines unless noted; connectors and agents are named by their unique names.
`agent=None` means "the shared credential". For a per_agent connector an agent is required; for a
shared one naming an agent is refused when managing credentials, but allowed for `call_tool` and
`tool_page` (the agent uses the shared credential; the audit row names the agent).

Each method hands its work to one part (`core/services/`): the catalog (connectors, agents), the
authorizer (keys, OAuth, disconnect), the sync engine, the call path (calls and their audit) and the
inventory (read-only views), which share a `ServiceContext` (store, network policy, timeout) and one
client pool. `acting_as(operator)` is the same services acting for another operator: it shares
every part and differs only in who the audit rows name.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from core.errors import SwitchboardError
from core.models import (
    AgentInfo,
    AuthorizationOutcome,
    CallOutcome,
    ConnectorInfo,
    ConnectOutcome,
    CredentialInfo,
    Overview,
    SyncResult,
    ToolPage,
)
from core.net import NetworkPolicy
from core.public_url import dashboard_redirect_uri
from core.services.authorizer import Authorizer
from core.services.calls import CallTarget, ToolCalls
from core.services.catalog import Catalog
from core.services.context import ServiceContext
from core.services.credentials import Credentials
from core.services.inventory import Inventory
from core.services.overview import OverviewReader
from core.services.pool import ClientPool
from core.services.sync import DEFAULT_CONCURRENCY, SyncEngine
from core.store.db import Store

if TYPE_CHECKING:
    from core.access import AgentAccess
    from core.mcp.types import ToolResult


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
        self.operator = operator  # who the audit rows name
        self.context = ServiceContext(
            store,
            NetworkPolicy.from_env() if policy is None else policy,
            timeout=timeout,
            redirect_uri=redirect_uri or dashboard_redirect_uri(),
        )
        self._pool = ClientPool()
        self._credentials = Credentials(self.context, self._pool)
        self._catalog = Catalog(self.context, self._pool)
        self._syncs = SyncEngine(self.context, self._credentials)
        self._authorizer = Authorizer(self.context, self._credentials, self._syncs)
        self._calls = ToolCalls(self.context, self._credentials, self._syncs)
        self._inventory = Inventory(self.context, self._credentials)
        self._overview = OverviewReader(self.context)

    @classmethod
    def open(cls, store_path: str | None = None, **options: Any) -> Switchboard:
        """Open the store (SWITCHBOARD_STORE or the default path) and build the services (not async)."""
        return cls(Store.open(store_path), **options)

    def acting_as(self, operator: str) -> Switchboard:
        """These services acting for `operator` (not async): same store, pool and parts; the audit
        rows of its calls name `operator`."""
        view = copy.copy(self)
        view.operator = operator
        return view

    async def aclose(self) -> None:
        """Close this event loop's clients and let its background store writes land."""
        await self._pool.aclose()
        await self.context.settle()

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def policy(self) -> NetworkPolicy:
        return self.context.policy

    @property
    def redirect_uri(self) -> str:
        return self.context.redirect_uri

    @property
    def timeout(self) -> float:
        return self.context.timeout

    def access(self) -> AgentAccess:
        """Agents' gateway access — tokens, policies, tool pinning — acting for this operator (not
        async; the same API the CLI's `agent token`, `policy` and `pinning` commands use)."""
        from core.access import AgentAccess  # here: only the faces that manage the gateway need it

        return AgentAccess(self.store, operator=self.operator)

    # --- connectors and agents (core/services/catalog.py) ---------------------------------------

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
        return await self._catalog.add_connector(
            name, url, auth_type, credential_mode, header_name, client_id, client_secret, scopes
        )

    async def update_connector(self, name: str, **changes: Any) -> ConnectorInfo:
        return await self._catalog.update_connector(name, **changes)

    async def remove_connector(self, name: str) -> None:
        await self._catalog.remove_connector(name)

    async def list_connectors(self) -> list[ConnectorInfo]:
        return await self._catalog.list_connectors()

    async def get_connector(self, name: str) -> ConnectorInfo:
        return await self._catalog.get_connector(name)

    async def add_agent(self, name: str, description: str = "") -> AgentInfo:
        return await self._catalog.add_agent(name, description)

    async def list_agents(self) -> list[AgentInfo]:
        return await self._catalog.list_agents()

    async def remove_agent(self, name: str) -> None:
        await self._catalog.remove_agent(name)

    # --- credentials and OAuth (core/services/authorizer.py) ------------------------------------

    async def set_secret(self, connector: str, secret: str, agent: str | None = None) -> CredentialInfo:
        return await self._authorizer.set_secret(connector, secret, agent)

    async def connect(self, connector: str, agent: str | None = None) -> ConnectOutcome:
        return await self._authorizer.connect(connector, agent)

    async def start_authorization(
        self,
        connector: str,
        agent: str | None = None,
        *,
        redirect_uri: str | None = None,
        return_to: str = "/",
    ) -> str:
        return await self._authorizer.start_authorization(
            connector, agent, redirect_uri=redirect_uri, return_to=return_to
        )

    async def complete_authorization(self, params: Mapping[str, str]) -> AuthorizationOutcome:
        return await self._authorizer.complete_authorization(params)

    async def connect_cli(
        self,
        connector: str,
        agent: str | None = None,
        *,
        timeout: float = 300.0,
        on_authorization_url: Callable[[str], None] | None = None,
    ) -> ConnectOutcome:
        return await self._authorizer.connect_cli(
            connector, agent, timeout=timeout, on_authorization_url=on_authorization_url
        )

    async def disconnect(self, connector: str, agent: str | None = None) -> None:
        await self._authorizer.disconnect(connector, agent)

    # --- tools (core/services/sync.py, calls.py, inventory.py) ----------------------------------

    async def sync(self, connector: str, agent: str | None = None) -> SyncResult:
        return await self._syncs.sync(connector, agent)

    def sync_many(
        self,
        connectors: list[str] | None = None,
        agent: str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_start: Callable[[int], None] | None = None,
        on_plan: Callable[[list[tuple[str, str | None]]], None] | None = None,
    ) -> AsyncIterator[SyncResult]:
        """`async for result in service.sync_many(...)`: see `SyncEngine.sync_many`."""
        return self._syncs.sync_many(
            connectors, agent, concurrency=concurrency, on_start=on_start, on_plan=on_plan
        )

    async def call_tool(
        self, connector: str, tool: str, arguments: Mapping[str, Any], agent: str | None = None
    ) -> CallOutcome:
        return await self._calls.call(connector, tool, arguments, agent, operator=self.operator)

    async def call_targets(self, agent_id: str) -> dict[str, CallTarget | SwitchboardError]:
        """For every connector, where a call as the agent (by id: the gateway knows agents by id)
        goes and with which credential (the agent gateway resolves these once per store change):
        see `ToolCalls.targets`."""
        return await self._calls.targets(agent_id)

    async def call_resolved(
        self, target: CallTarget, tool: str, arguments: Mapping[str, Any], *, timeout: float | None = None
    ) -> ToolResult:
        """A call with a resolved target, no store access, no audit row: see `ToolCalls.call_resolved`."""
        return await self._calls.call_resolved(target, tool, arguments, timeout=timeout)

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
        return await self._inventory.tool_page(
            connector=connector,
            agent=agent,
            search=search,
            filters=filters,
            sort=sort,
            descending=descending,
            offset=offset,
            limit=limit,
        )

    async def tool_list(self, connector: str | None = None, agent: str | None = None) -> list[dict[str, Any]]:
        return await self._inventory.tool_list(connector, agent)

    async def tool_definition(self, connector: str, tool: str, agent: str | None = None) -> dict[str, Any]:
        return await self._inventory.tool_definition(connector, tool, agent)

    async def drift(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        return await self._inventory.drift(connector, agent)

    # --- observability --------------------------------------------------------------------------

    async def overview(self) -> Overview:
        """Counts, what needs attention (with the fix for each) and the overview's chart data."""
        return await self._overview.overview()

    async def health(self) -> list[CredentialInfo]:
        return await self._inventory.health()

    async def credentials_for_agent(self, agent: str) -> list[CredentialInfo]:
        return await self._inventory.credentials_for_agent(agent)

    async def audit(
        self, *, limit: int = 200, offset: int = 0, connector: str | None = None, agent: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._inventory.audit(limit=limit, offset=offset, connector=connector, agent=agent)

    async def auth_trace(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        return await self._inventory.auth_trace(connector, agent)

    async def rotate_key(self) -> dict[str, Any]:
        report = await self.context.db(self.store.keys.rotate)
        return {
            "key_id": report.active_key,
            "reencrypted": report.reencrypted,
            "unreadable": report.unreadable,
            "retired": list(report.retired),
            "still_used": list(report.still_used),
        }
