"""`Switchboard`: the one API of the dashboard, the notebooks and the CLI — a thin facade.

All methods are coroutines unless noted; connectors and agents are named by their unique names.
`agent=None` means "the shared credential". For a per_agent connector an agent is required; for a
shared one naming an agent is refused when managing credentials, but allowed for `call_tool` and
`tool_page` (the agent uses the shared credential; the audit row names the agent).

Each method hands its work to one part (`core/services/`): the catalog (connectors, agents), the
authorizer (keys, OAuth, disconnect), the sync engine, the call path (calls and their audit) and the
inventory (read-only views), which share a `ServiceContext` (store, network policy, timeout) and one
client pool. `acting_as(principal)` is the same services acting for another operator: it shares
every part and differs only in who acts — what the role allows (`core/roles.py`, checked before
every method: a refusal raises `AccessDenied`) and who the audit rows name.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from core.errors import ConfigurationError, SwitchboardError
from core.models import (
    AgentInfo,
    AuthorizationOutcome,
    CallOutcome,
    ConnectorInfo,
    ConnectOutcome,
    CredentialInfo,
    CredentialRemoval,
    CredentialScopes,
    OffboardingReport,
    OperatorInfo,
    Overview,
    SyncResult,
    ToolPage,
)
from core.net import NetworkPolicy
from core.public_url import dashboard_redirect_uri
from core.roles import LOCAL_ADMIN, Principal, enforce_roles
from core.services.context import DEFAULT_CONCURRENCY, ServiceContext
from core.services.parts import Parts
from core.services.pool import ClientPool
from core.store.db import Store

if TYPE_CHECKING:
    from core.access import AgentAccess
    from core.mcp.types import ToolResult
    from core.services.authorizer import Authorizer
    from core.services.calls import CallTarget, ToolCalls
    from core.services.catalog import Catalog
    from core.services.configuration import Configuration, ImportReport
    from core.services.credentials import Credentials
    from core.services.inventory import Inventory
    from core.services.offboarding import Offboarding
    from core.services.operators import Operators
    from core.services.overview import OverviewReader
    from core.services.sync import SyncEngine


@enforce_roles
class Switchboard:
    def __init__(
        self,
        store: Store,
        *,
        policy: NetworkPolicy | None = None,
        principal: Principal = LOCAL_ADMIN,
        redirect_uri: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.principal = principal  # who acts: what the services allow, who the audit rows name
        self.context = ServiceContext(
            store,
            NetworkPolicy.from_env() if policy is None else policy,
            timeout=timeout,
            redirect_uri=redirect_uri or dashboard_redirect_uri(),
        )
        self._pool = ClientPool()
        # Each part is built, and its module imported, on first use (`parts.py`): listing
        # connectors loads neither OAuth nor the MCP client. Views (`acting_as`) share these.
        self._parts = Parts(self.context, self._pool)

    @classmethod
    def open(cls, store_path: str | None = None, **options: Any) -> Switchboard:
        """Open the store (SWITCHBOARD_STORE or the default path) and build the services (not async)."""
        return cls(Store.open(store_path), **options)

    def acting_as(self, principal: Principal) -> Switchboard:
        """These services acting for `principal` (not async): same store, pool and parts; what they
        allow is the principal's role, and the audit rows name the principal."""
        view = copy.copy(self)
        view.principal = principal
        return view

    # The parts, shared by every view of these services (see `core/services/parts.py`).

    @property
    def _credentials(self) -> Credentials:
        return self._parts.credentials

    @property
    def _catalog(self) -> Catalog:
        return self._parts.catalog

    @property
    def _syncs(self) -> SyncEngine:
        return self._parts.syncs

    @property
    def _offboarding(self) -> Offboarding:
        return self._parts.offboarding

    @property
    def _authorizer(self) -> Authorizer:
        return self._parts.authorizer

    @property
    def _calls(self) -> ToolCalls:
        return self._parts.calls

    @property
    def _inventory(self) -> Inventory:
        return self._parts.inventory

    @property
    def _overview(self) -> OverviewReader:
        return self._parts.overview

    @property
    def _operators(self) -> Operators:
        return self._parts.operators

    @property
    def operator(self) -> str:
        """Who the audit rows name."""
        return self.principal.name

    def _record_action(self, action: str, target: str, outcome: str) -> None:
        self.context.record_action(self.principal, action, target, outcome)

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
        async; the same API the CLI's `agent token`, `policy` and `pinning` commands use). It checks
        this principal's role itself, so handing it out needs none beyond a viewer's."""
        from core.access import AgentAccess  # here: only the faces that manage the gateway need it

        return AgentAccess(self.store, principal=self.principal)

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

    async def remove_connector(self, name: str) -> OffboardingReport:
        """Revoke every credential of the connector at its authorization server, then delete it."""
        return await self._offboarding.offboard_connector(name, remove=True)

    async def list_connectors(self) -> list[ConnectorInfo]:
        return await self._catalog.list_connectors()

    async def get_connector(self, name: str) -> ConnectorInfo:
        return await self._catalog.get_connector(name)

    async def add_agent(self, name: str, description: str = "") -> AgentInfo:
        return await self._catalog.add_agent(name, description)

    async def update_agent(self, name: str, description: str) -> AgentInfo:
        """Change an agent's description (its name is its identity: tokens, paths, audit rows)."""
        return await self._catalog.update_agent(name, description)

    async def list_agents(self) -> list[AgentInfo]:
        return await self._catalog.list_agents()

    async def remove_agent(self, name: str) -> OffboardingReport:
        """Offboard the agent (`offboard_agent`), then delete it."""
        return await self._offboarding.offboard_agent(name, remove=True, principal=self.principal)

    # --- offboarding (core/services/offboarding.py) ---------------------------------------------

    async def offboard_agent(self, name: str) -> OffboardingReport:
        """Revoke everything of agent `name`: its own credentials at every authorization server that
        offers revocation (RFC 7009), deleted locally in every case, and its gateway tokens. The
        report says per credential and server what was revoked, deleted locally only, or failed."""
        return await self._offboarding.offboard_agent(name, principal=self.principal)

    async def offboard_connector(self, name: str) -> OffboardingReport:
        """Revoke and delete every credential of connector `name` (shared and per agent); the
        connector stays, needing new credentials."""
        return await self._offboarding.offboard_connector(name)

    # --- configuration as code (core/services/configuration.py) ---------------------------------

    async def export_config(self) -> str:
        """Connectors, agents, credential and approval modes, gateway policies as YAML; no secrets."""
        return await self._configuration().export(self.access())

    async def import_config(
        self, text: str, *, source: str = "configuration", dry_run: bool = False
    ) -> ImportReport:
        """Apply an exported file idempotently (only the differences); `dry_run` only reports them.
        An invalid file raises `InvalidConfigFile` (every problem with its line) and changes nothing."""
        return await self._configuration().import_text(text, source, self.access(), dry_run=dry_run)

    def _configuration(self) -> Configuration:
        from core.services.configuration import Configuration  # here: YAML loads only for these two

        return Configuration(self._catalog)

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

    async def step_up(
        self,
        connector: str,
        agent: str | None = None,
        *,
        scopes: tuple[str, ...] | None = None,
        redirect_uri: str | None = None,
        return_to: str = "/",
    ) -> str:
        """Start a step-up authorization (the browser URL, as `start_authorization`): ask for the
        scopes the credential was granted plus those its last 403 insufficient_scope challenge
        asked for (`credential_scopes(...).step_up`), or for `scopes`."""
        if scopes is None:
            found = await self._inventory.credential_scopes(connector, agent)
            scopes = next((s.step_up for s in found if s.agent == agent), ())
            if not scopes:
                raise ConfigurationError(
                    f"{connector} has every scope its server asked for: nothing to step up to",
                    hint="name the scopes to ask for, or connect again",
                )
        return await self._authorizer.start_authorization(
            connector, agent, redirect_uri=redirect_uri, return_to=return_to, scopes=tuple(scopes)
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

    async def disconnect(self, connector: str, agent: str | None = None) -> CredentialRemoval:
        return await self._authorizer.disconnect(connector, agent)

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

    async def credential_scopes(
        self, connector: str | None = None, agent: str | None = None
    ) -> list[CredentialScopes]:
        """Per OAuth credential: scopes granted, listed by the server's metadata, and asked for by its
        last 403 insufficient_scope challenge; `step_up` is non-empty where a step-up is needed."""
        return await self._inventory.credential_scopes(connector, agent)

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

    # --- the dashboard's operators, for --auth basic (core/services/operators.py) --------------

    async def add_operator(self, name: str, role: str, password: str) -> OperatorInfo:
        """Add an operator, or set an existing one's role and password (only its hash is kept)."""
        return await self._operators.add(name, role, password)

    async def list_operators(self) -> list[OperatorInfo]:
        return await self._operators.list()

    async def remove_operator(self, name: str) -> None:
        await self._operators.remove(name)
