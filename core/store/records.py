"""Rows the store returns that have no equivalent in `core.models` (which it reuses otherwise)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.models import ConnectorInfo


@dataclass(frozen=True)
class Connector:
    """A `connectors` row. The client secret is never loaded here: see `Store.connector_client_secret`."""

    id: str
    name: str
    url: str
    auth_type: str
    credential_mode: str
    header_name: str | None
    scopes: tuple[str, ...] | None  # None: no override, use what discovery suggests
    allow_plain_pkce: bool
    prm: dict[str, Any] | None
    as_metadata: dict[str, Any] | None
    issuer: str | None
    client_id: str | None
    has_client_secret: bool
    registration_method: str | None
    status: str
    last_sync_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float
    tool_count: int = 0  # tools in the largest current list (shared, or any one agent's)
    has_shared_credential: bool = False

    def info(self) -> ConnectorInfo:
        return ConnectorInfo(
            id=self.id,
            name=self.name,
            url=self.url,
            auth_type=self.auth_type,
            credential_mode=self.credential_mode,
            header_name=self.header_name,
            status=self.status,
            tool_count=self.tool_count,
            last_sync_at=self.last_sync_at,
            last_error=self.last_error,
            issuer=self.issuer,
            registration_method=self.registration_method,
            scopes=self.scopes or (),
            client_id=self.client_id,
            has_client_secret=self.has_client_secret,
            has_shared_credential=self.has_shared_credential,
        )


@dataclass(frozen=True)
class SnapshotResult:
    """What recording one sync's tool list did (`ToolRepository.record_syncs`)."""

    snapshot_id: int
    tool_count: int
    added: int
    removed: int
    changed: int
    unchanged: bool  # the list equals the current snapshot: only its verified_at moved

    @property
    def drifted(self) -> int:
        return self.added + self.removed + self.changed


@dataclass(frozen=True)
class ToolChange:
    name: str
    change: str  # added | removed | changed
    fields: tuple[
        str, ...
    ] = ()  # for "changed": title, description, input_schema, output_schema, annotations, other


@dataclass(frozen=True)
class ToolDrift:
    """The difference between the current snapshot of (connector, agent) and the one before it."""

    connector_id: str
    agent_id: str
    current_synced_at: float | None
    previous_synced_at: float | None  # None: there is no earlier snapshot, so nothing drifted
    changes: tuple[ToolChange, ...]


@dataclass(frozen=True)
class RotationReport:
    active_key: str
    reencrypted: int  # secrets re-encrypted under the active key
    unreadable: int  # secrets that could not be decrypted (their credentials now need re-auth)
    retired: tuple[str, ...]  # keys removed from the keyring because nothing used them any more
    still_used: tuple[str, ...]  # old keys kept because some (unreadable) secret still names them


@dataclass(frozen=True)
class AgentToken:
    """An agent's gateway token as stored: never the token, only facts about it."""

    id: str
    agent: str  # the agent's name
    label: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def status(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "label": self.label,
            "status": self.status(),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


@dataclass(frozen=True)
class ActiveToken:
    """What a gateway needs to authenticate a request (loaded for every active token)."""

    id: str
    agent_id: str
    token_hash: str
    expires_at: float | None


@dataclass(frozen=True)
class AgentPolicy:
    """An agent's stored policy: ordered allow/deny rules (JSON objects) and its limits (None: the
    gateway's defaults). `core.access.Policy` is what reads them."""

    agent: str  # the agent's name
    rules: tuple[dict[str, Any], ...]
    requests_per_minute: int | None
    max_concurrent_calls: int | None


@dataclass(frozen=True)
class OverviewRows:
    """The overview's aggregate rows (`store.overview.read`), before the services make counts of them."""

    connectors: list[dict[str, Any]]  # name, auth_type, credential_mode, status, last_error, credentials
    credentials: list[dict[str, Any]]  # connector, auth_type, agent, kind, status, reason, expires_at, ...
    tool_lists: list[dict[str, Any]]  # connector, agent, tools, drifted, quarantined, pending
    activity: list[dict[str, Any]]  # hour, connector, calls, errors
