"""Switchboard's encrypted DuckDB store: `Store` (db.py), keys and encryption (crypto.py)."""

from core.store.crypto import Keyring, Secret, fingerprint
from core.store.db import Store
from core.store.oauth import StoreOAuthStorage
from core.store.records import Connector, RotationReport, SnapshotResult, ToolChange, ToolDrift

__all__ = [
    "Connector",
    "Keyring",
    "RotationReport",
    "Secret",
    "SnapshotResult",
    "Store",
    "StoreOAuthStorage",
    "ToolChange",
    "ToolDrift",
    "fingerprint",
]
