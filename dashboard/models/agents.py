"""Agents: the directory (list, create) and one agent's credentials page."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import param

from core.auth_schemes import AuthScheme, auth_scheme, scheme_of_kind
from core.errors import ConfigurationError
from core.models import AgentInfo, ConnectorInfo, CredentialInfo, OffboardingReport, SyncResult
from dashboard.models.base import ConnectAction, ServiceModel, connect_or_authorize
from dashboard.models.formatting import NEVER, format_expiry, format_scopes, format_time
from dashboard.navigation import agent_path

NOT_CONNECTED, CONNECTED, NEEDS_REAUTH = "not connected", "connected", "needs re-auth"


class AgentDirectory(ServiceModel):
    """The list of agents and creating new ones."""

    agents = param.List(default=[], item_type=AgentInfo)

    async def refresh(self) -> list[AgentInfo]:
        return await self._load(
            "agents", self.services.list_agents(), lambda agents: self.param.update(agents=agents)
        )

    async def create(self, name: str, description: str = "") -> AgentInfo:
        if not name.strip():
            raise ConfigurationError("Give the agent a name.")
        agent = await self.services.add_agent(name.strip(), description.strip())
        await self.refresh()
        return agent

    async def remove(self, name: str) -> OffboardingReport:
        """Revoke everything of the agent, then delete it; the report says what each server did."""
        report = await self.services.remove_agent(name)
        await self.refresh()
        return report

    @param.depends("agents")
    def frame(self) -> pd.DataFrame:
        rows = [
            {"name": a.name, "description": a.description, "created": format_time(a.created_at)}
            for a in self.agents
        ]
        return pd.DataFrame(rows, columns=["name", "description", "created"])


@dataclass(frozen=True)
class CredentialRow:
    """One connector as an agent's page shows it."""

    connector: str
    auth_type: str
    state: str  # NOT_CONNECTED | CONNECTED | NEEDS_REAUTH
    credential: CredentialInfo

    @property
    def scheme(self) -> AuthScheme:
        return auth_scheme(self.auth_type)

    @property
    def takes_key(self) -> bool:
        """A bearer token or API key the operator types in, rather than a browser authorization."""
        return self.scheme.static_secret

    def facts(self) -> dict[str, str]:
        c = self.credential
        return {
            "identity": c.identity or "unknown",
            "scopes": format_scopes(c.scopes),
            "expires": format_expiry(c.expires_at),
            "fingerprint": c.fingerprint or NEVER,
            "last refresh": format_time(c.last_refresh_at),
        }


class AgentCredentials(ServiceModel):
    """One agent's page: its own credentials for per_agent connectors, and the shared ones it uses."""

    agent = param.String(default="", doc="The agent's name.")
    per_agent = param.List(
        default=[], item_type=CredentialRow, doc="Connectors that give it its own account."
    )
    shared = param.List(
        default=[], item_type=CredentialRow, doc="Connectors whose shared credential it uses."
    )
    offboarding = param.ClassSelector(
        class_=OffboardingReport, default=None, allow_None=True, doc="The last offboarding's report."
    )

    @property
    def return_to(self) -> str:
        return agent_path(self.agent)

    async def refresh(self) -> list[CredentialRow]:
        """Every connector the agent can use, its own accounts first."""

        async def rows() -> list[CredentialRow]:
            connectors = {c.name: c for c in await self.services.list_connectors()}
            credentials = await self.services.credentials_for_agent(self.agent)
            return [_row(c, connectors.get(c.connector)) for c in credentials]

        return await self._load(
            "credentials",
            rows(),
            lambda found: self.param.update(
                per_agent=[r for r in found if r.credential.agent is not None],
                shared=[r for r in found if r.credential.agent is None],
            ),
        )

    def row(self, connector: str) -> CredentialRow:
        for row in self.per_agent:
            if row.connector == connector:
                return row
        raise ConfigurationError(f"{connector} is not a per-agent connector of {self.agent}; reload the page")

    async def connect(self, connector: str) -> ConnectAction:
        """Connect (or reconnect) this agent's own account; OAuth comes back to this page."""
        action = await connect_or_authorize(
            self.services, connector, self.row(connector).auth_type, self.agent, self.return_to
        )
        if action.outcome is not None:
            await self.refresh()
        return action

    async def set_key(self, connector: str, secret: str) -> CredentialInfo:
        """Store this agent's bearer token or API key (the services validate it against the server)."""
        if not secret:
            raise ConfigurationError("Enter the token or key first.")
        credential = await self.services.set_secret(connector, secret, agent=self.agent)
        await self.refresh()
        return credential

    async def disconnect(self, connector: str) -> None:
        await self.services.disconnect(connector, agent=self.agent)
        await self.refresh()

    async def offboard(self) -> OffboardingReport:
        """Revoke everything of this agent (its own credentials at their servers, its gateway
        tokens) and delete it locally; the agent stays."""
        report = await self.services.offboard_agent(self.agent)
        self.offboarding = report
        await self.refresh()
        return report

    async def sync(self, connector: str) -> SyncResult:
        try:
            return await self.services.sync(connector, agent=self.agent)
        finally:
            await self.refresh()


def _row(credential: CredentialInfo, connector: ConnectorInfo | None) -> CredentialRow:
    state = {"connected": CONNECTED, "missing": NOT_CONNECTED}.get(credential.status, NEEDS_REAUTH)
    auth_type = connector.auth_type if connector is not None else scheme_of_kind(credential.kind).name
    return CredentialRow(
        connector=credential.connector, auth_type=auth_type, state=state, credential=credential
    )
