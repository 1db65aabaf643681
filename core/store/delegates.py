"""The store's pre-repository API, kept while code outside `core/store` still calls it.

Every method here delegates to a repository (see `core.store.db`). Connectors and agents are named
by a "ref" (an id or, failing that, a name); the repositories take ids. Once the services, CLI and
dashboard call the repositories, this module goes away whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import ConfigurationError, NotFoundError
from core.models import AgentInfo, CredentialInfo, ToolPage
from core.oauth.storage import CredentialKey
from core.oauth.trace import TraceEvent
from core.store.crypto import Secret
from core.store.records import Connector, RotationReport, SnapshotResult, ToolDrift

if TYPE_CHECKING:
    from core.store.repositories import (
        AgentRepository,
        AuditRepository,
        AuthTraceRepository,
        ConnectorRepository,
        CredentialRepository,
        KeyRepository,
        ToolRepository,
    )


class LegacyStoreAPI:
    connectors: ConnectorRepository
    agents: AgentRepository
    credentials: CredentialRepository
    tools: ToolRepository
    audit_log: AuditRepository
    auth_trace_log: AuthTraceRepository
    keys: KeyRepository

    def _connector_id(self, ref: str) -> str:
        with self.tx() as tx:  # type: ignore[attr-defined]
            return self.connectors.id_of(tx, ref)

    def _agent_id(self, ref: str) -> str:
        with self.tx() as tx:  # type: ignore[attr-defined]
            return self.agents.find(tx, ref).id

    # --- connectors and agents ------------------------------------------------------------------

    def create_connector(self, name: str, url: str, auth_type: str, **options: Any) -> Connector:
        return self.connectors.create(name, url, auth_type, **options)

    def get_connector(self, ref: str) -> Connector:
        return self.connectors.get(self._connector_id(ref))

    def list_connectors(self) -> list[Connector]:
        return self.connectors.list()

    def update_connector(self, ref: str, **changes: Any) -> Connector:
        return self.connectors.update(self._connector_id(ref), **changes)

    def delete_connector(self, ref: str) -> None:
        self.connectors.delete(self._connector_id(ref))

    def connector_client_secret(self, ref: str) -> Secret | None:
        return self.connectors.client_secret(self._connector_id(ref))

    def create_agent(self, name: str, description: str = "") -> AgentInfo:
        return self.agents.create(name, description)

    def get_agent(self, ref: str) -> AgentInfo:
        with self.tx() as tx:  # type: ignore[attr-defined]
            return self.agents.find(tx, ref)

    def list_agents(self) -> list[AgentInfo]:
        return self.agents.list()

    def delete_agent(self, ref: str) -> None:
        self.agents.delete(self._agent_id(ref))

    # --- credentials ----------------------------------------------------------------------------

    def resolve_credential(self, connector: str, agent: str | None) -> CredentialKey:
        with self.transaction():  # type: ignore[attr-defined]
            connector_id = self._connector_id(connector)
            if self.connectors.get(connector_id).credential_mode == "per_agent" and agent is None:
                raise ConfigurationError(f"connector {connector!r} uses per-agent credentials: name an agent")
            return self.credentials.resolve(
                connector_id, self._agent_id(agent) if agent is not None else None
            )

    def save_secret(self, key: CredentialKey, secret: str, *, identity: str | None = None) -> CredentialInfo:
        return self.credentials.save_secret(key, secret, identity=identity)

    def load_secret(self, key: CredentialKey) -> Secret:
        return self.credentials.load_secret(key)

    def credential_stamp(self, key: CredentialKey) -> tuple | None:
        return self.credentials.stamp(key)

    def credential(self, key: CredentialKey) -> CredentialInfo | None:
        return self.credentials.info(key)

    def credential_health(
        self, connector: str | None = None, agent: str | None = None
    ) -> list[CredentialInfo]:
        return self.credentials.health(
            self._connector_id(connector) if connector is not None else None,
            self._agent_id(agent) if agent is not None else None,
        )

    def delete_credentials(self, connector: str) -> int:
        return self.credentials.delete_all(self._connector_id(connector))

    def delete_credential(self, key: CredentialKey) -> bool:
        return self.credentials.delete(key)

    def set_credential_status(self, key: CredentialKey, status: str, reason: str | None = None) -> None:
        self.credentials.set_status(key, status, reason)

    def set_credential_identity(self, key: CredentialKey, identity: str | None) -> None:
        self.credentials.set_identity(key, identity)

    def record_rejection(self, key: CredentialKey, http_status: int) -> None:
        self.credentials.record_rejection(key, http_status)

    # --- tools ----------------------------------------------------------------------------------

    def record_snapshot(
        self,
        connector: str,
        tools: Sequence[Mapping[str, Any]],
        *,
        agent: str | None = None,
        synced_at: float | None = None,
    ) -> SnapshotResult:
        result = self.record_snapshots([(connector, tools, agent)], synced_at=synced_at)[0]
        if isinstance(result, ConfigurationError):
            raise result
        return result

    def record_snapshots(
        self,
        syncs: Sequence[tuple[str, Sequence[Mapping[str, Any]], str | None]],
        *,
        synced_at: float | None = None,
    ) -> list[SnapshotResult | ConfigurationError]:
        """Record several syncs' tool lists — (connector, tools, agent or None) each, by ref — in one
        transaction (`ToolRepository.record_syncs`, which takes ids)."""
        with self.tx() as tx:  # type: ignore[attr-defined]
            connector_ids = self.connectors.ids_of(tx, [c for c, _, _ in syncs])
            agent_ids = self.agents.ids_of(tx, [a for _, _, a in syncs if a is not None])
        outcomes: list[Any] = [None] * len(syncs)
        known, positions = [], []
        for position, (connector, tools, agent) in enumerate(syncs):
            if connector not in connector_ids:
                outcomes[position] = NotFoundError(f"no connector {connector!r}")
            elif agent is not None and agent not in agent_ids:
                outcomes[position] = NotFoundError(f"no agent {agent!r}")
            else:
                known.append((connector_ids[connector], agent_ids[agent] if agent is not None else "", tools))
                positions.append(position)
        for position, outcome in zip(
            positions, self.tools.record_syncs(known, synced_at=synced_at), strict=True
        ):
            outcomes[position] = outcome
        return outcomes

    def tool_page(
        self, *, connector: str | None = None, agent: str | None = None, **options: Any
    ) -> ToolPage:
        return self.tools.page(
            connector_id=self._connector_id(connector) if connector is not None else None,
            agent_id=self._agent_id(agent) if agent is not None else None,
            **options,
        )

    def current_tools(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        return self.tools.definitions(*self._tool_owner(connector, agent))

    def tool_definition(self, connector: str, name: str, agent: str | None = None) -> dict[str, Any]:
        found = self.tools.definitions(*self._tool_owner(connector, agent), name=name)
        if not found:
            raise NotFoundError(f"no tool {name!r} on connector {connector!r}", hint="sync the connector")
        return found[0]

    def drift(self, connector: str, agent: str | None = None) -> ToolDrift:
        return self.tools.drift(*self._tool_owner(connector, agent))

    def _tool_owner(self, connector: str, agent: str | None) -> tuple[str, str]:
        with self.tx() as tx:  # type: ignore[attr-defined]
            connector_id = self.connectors.id_of(tx, connector)
            agent_id = self.agents.find(tx, agent).id if agent is not None else ""
            return connector_id, self.tools.list_owner(tx, connector_id, agent_id)

    # --- audit, auth trace, keys ----------------------------------------------------------------

    def record_call(self, **entry: Any) -> int:
        return self.audit_log.record(**entry)

    def audit(
        self, *, connector: str | None = None, agent: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[dict[str, Any]]:
        return self.audit_log.list(
            connector_id=self._connector_id(connector) if connector is not None else None,
            agent_id=self._agent_id(agent) if agent is not None else None,
            limit=limit,
            offset=offset,
        )

    def record_auth_step(self, key: CredentialKey, attempt_id: str, event: TraceEvent) -> None:
        self.auth_trace_log.record(key, attempt_id, event)

    def auth_trace(self, key: CredentialKey, attempt_id: str | None = None) -> list[dict[str, Any]]:
        return self.auth_trace_log.attempt(key, attempt_id)

    def key_usage(self) -> dict[str, int]:
        return self.keys.usage()

    def rotate_key(self, *, batch_size: int = 100) -> RotationReport:
        return self.keys.rotate(batch_size=batch_size)

    def reencrypt(self, *, batch_size: int = 100) -> RotationReport:
        return self.keys.reencrypt(batch_size=batch_size)

    def retire_unused_keys(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.keys.retire_unused()
