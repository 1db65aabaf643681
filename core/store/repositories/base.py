"""What every repository shares: the store kernel it works through, and small validation helpers."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from core.store.db import Store


class Repository:
    """One aggregate's reads and writes. Every method is one transaction (joining the caller's when
    it runs inside `store.transaction()`); none waits on the network."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"


def require(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ConfigurationError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def owner_filter(alias: str, connector_id: str | None, agent_id: str | None) -> tuple[str, list[str]]:
    """A WHERE clause (or "") restricting rows of `alias` to a connector and/or an agent."""
    where, params = [], []
    for column, value in (("connector_id", connector_id), ("agent_id", agent_id)):
        if value is not None:
            where.append(f"{alias}.{column} = ?")
            params.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def delete_owned(tx: Any, column: str, owner_id: str) -> None:
    """Remove what belongs to a connector or an agent (`column`: connector_id or agent_id): its
    credentials, pending authorizations and tool snapshots. Audit and trace rows stay (history)."""
    for table in ("credentials", "pending_authorizations", "current_tools"):
        tx.execute(f"DELETE FROM {table} WHERE {column} = ?", [owner_id])
    tx.execute(
        f"DELETE FROM tools WHERE snapshot_id IN (SELECT id FROM tool_snapshots WHERE {column} = ?)",
        [owner_id],
    )
    tx.execute(f"DELETE FROM tool_snapshots WHERE {column} = ?", [owner_id])


def new_id() -> str:
    return secrets.token_hex(8)
