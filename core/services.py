"""The one API the dashboard, the notebooks and the CLI call: `Switchboard`.

API CONTRACT (implementation in progress — bodies land as core/store, core/mcp and core/oauth land).
All methods are coroutines unless noted; names of connectors and agents are their unique names.
`agent=None` means "the shared credential"; for a per_agent connector an agent is required, for a
shared one it is refused (ConfigurationError) — except `call_tool`, `tool_page`, which accept an agent
for a shared connector (the agent uses the shared credential; the audit row names the agent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from core.models import (
    AgentInfo,
    AuthorizationOutcome,
    CallOutcome,
    ConnectOutcome,
    ConnectorInfo,
    CredentialInfo,
    SyncResult,
    ToolPage,
)


class Switchboard:
    @classmethod
    def open(cls, store_path: str | None = None, **options: Any) -> Switchboard:
        """Open the store (SWITCHBOARD_STORE or the default path) and build the services (not async)."""
        raise NotImplementedError

    async def aclose(self) -> None: ...

    # connectors
    async def add_connector(self, name: str, url: str, auth_type: str, credential_mode: str = "shared",
                            header_name: str | None = None, client_id: str | None = None,
                            client_secret: str | None = None, scopes: str | None = None) -> ConnectorInfo: ...
    async def update_connector(self, name: str, **changes: Any) -> ConnectorInfo: ...
    async def remove_connector(self, name: str) -> None: ...
    async def list_connectors(self) -> list[ConnectorInfo]: ...
    async def get_connector(self, name: str) -> ConnectorInfo: ...

    # agents
    async def add_agent(self, name: str, description: str = "") -> AgentInfo: ...
    async def list_agents(self) -> list[AgentInfo]: ...
    async def remove_agent(self, name: str) -> None: ...

    # credentials and connection
    async def set_secret(self, connector: str, secret: str, agent: str | None = None) -> CredentialInfo:
        """Store a bearer token / API key after validating it by initializing the server; syncs tools
        when the connector has none yet."""
        ...

    async def connect(self, connector: str, agent: str | None = None) -> ConnectOutcome:
        """none/bearer/api_key: validate by initializing and sync. oauth: discover + register and return
        status needs_auth with what discovery found (call start_authorization next).
        client_credentials: obtain a token and sync."""
        ...

    async def start_authorization(self, connector: str, agent: str | None = None, *, redirect_uri: str,
                                  return_to: str = "/") -> str:
        """Discover/register if needed, record a pending authorization; return the URL to send the
        browser to (full-page navigation)."""
        ...

    async def complete_authorization(self, params: Mapping[str, str]) -> AuthorizationOutcome:
        """Finish a callback (query parameters as received). Never raises for a bad callback: the
        outcome says ok=False with a readable message and where to return the operator."""
        ...

    async def connect_cli(self, connector: str, agent: str | None = None, *, timeout: float = 300.0,
                          on_authorization_url: Callable[[str], None] | None = None) -> ConnectOutcome:
        """Connect from a terminal: OAuth via a loopback listener on 127.0.0.1."""
        ...

    async def disconnect(self, connector: str, agent: str | None = None) -> None:
        """Revoke (when the AS offers it) and delete the credential."""
        ...

    async def credentials_for_agent(self, agent: str) -> list[CredentialInfo]:
        """Every per_agent connector's credential state for this agent (missing ones as status
        'missing'), plus the shared connectors it can use."""
        ...

    async def health(self) -> list[CredentialInfo]: ...

    # tools
    async def sync(self, connector: str, agent: str | None = None) -> SyncResult: ...

    def sync_many(self, connectors: list[str] | None = None, agent: str | None = None, *, concurrency: int = 8,
                  on_start: Callable[[int], None] | None = None) -> AsyncIterator[SyncResult]:
        """Sync several connectors concurrently; yields each result as it finishes (one failure never
        stops the others). `None` = all connectors."""
        ...

    async def tool_page(self, *, connector: str | None = None, agent: str | None = None, search: str | None = None,
                        filters: Mapping[str, str] | None = None, sort: str = "connector", descending: bool = False,
                        offset: int = 0, limit: int = 50) -> ToolPage:
        """One page of the tool inventory. Row keys: connector, agent, name, title, description,
        parameter_count, read_only, destructive, last_changed_at, drift (bool)."""
        ...

    async def tool_list(self, connector: str | None = None, agent: str | None = None) -> list[dict[str, Any]]: ...

    async def tool_definition(self, connector: str, tool: str, agent: str | None = None) -> dict[str, Any]:
        """The full wire definition (name, title, description, inputSchema, outputSchema, annotations)."""
        ...

    async def drift(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]: ...

    async def call_tool(self, connector: str, tool: str, arguments: Mapping[str, Any],
                        agent: str | None = None) -> CallOutcome:
        """Validate arguments against inputSchema, call as the agent, audit the call."""
        ...

    # observability
    async def audit(self, *, limit: int = 200, connector: str | None = None,
                    agent: str | None = None) -> list[dict[str, Any]]: ...

    async def auth_trace(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        """The steps of the last connection attempt (discovery, registration, token), no secrets."""
        ...

    async def rotate_key(self) -> dict[str, Any]: ...
