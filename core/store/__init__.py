"""Switchboard's encrypted store on DuckDB or PostgreSQL: `Store` (the kernel, db.py) with one
repository per aggregate (repositories/), keys and encryption (crypto.py), migrations (schema.py),
copying between stores (transfer.py).

The names load on first use, so opening the store for one query does not import every repository."""

from core._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Keyring": "crypto",
        "Secret": "crypto",
        "fingerprint": "crypto",
        "Store": "db",
        "StoreOAuthStorage": "oauth",
        "ActiveToken": "records",
        "AgentPolicy": "records",
        "AgentToken": "records",
        "Connector": "records",
        "OverviewRows": "records",
        "RotationReport": "records",
        "SnapshotResult": "records",
        "ToolChange": "records",
        "ToolDrift": "records",
        "APPROVAL_MODES": "repositories.pinning",
        "TOOL_STATES": "repositories.pinning",
        "tool_state": "repositories.pinning",
        "RetentionPolicy": "retention",
    },
)
