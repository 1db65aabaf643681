"""Switchboard's encrypted store on DuckDB or PostgreSQL: `Store` (the kernel, db.py) with one
repository per aggregate (repositories/), keys and encryption (crypto.py), migrations (schema.py),
copying between stores (transfer.py)."""

from core.store.crypto import Keyring, Secret, fingerprint
from core.store.db import Store
from core.store.oauth import StoreOAuthStorage
from core.store.records import (
    ActiveToken,
    AgentPolicy,
    AgentToken,
    Connector,
    OverviewRows,
    RotationReport,
    SnapshotResult,
    ToolChange,
    ToolDrift,
)
from core.store.repositories.pinning import APPROVAL_MODES, TOOL_STATES, tool_state
from core.store.retention import RetentionPolicy

__all__ = [
    "APPROVAL_MODES",
    "TOOL_STATES",
    "ActiveToken",
    "AgentPolicy",
    "AgentToken",
    "Connector",
    "Keyring",
    "OverviewRows",
    "RetentionPolicy",
    "RotationReport",
    "Secret",
    "SnapshotResult",
    "Store",
    "StoreOAuthStorage",
    "ToolChange",
    "ToolDrift",
    "fingerprint",
    "tool_state",
]
