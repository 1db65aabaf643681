"""What gateway processes read, and how they notice changes made anywhere.

Every write that changes what some agent may see or do through the gateway moves
`gateway_changes.generation` in the same transaction (`bump`); a gateway process compares
`changes()` (that counter plus cheap aggregates over the tables the dashboard and CLI write) between
polls instead of re-reading everything. `gateway_instances` holds each gateway process's heartbeat,
so limits can be shared among the processes alive.
"""

from __future__ import annotations

import json
import time
from typing import Any

from core.store.engine import Tx
from core.store.repositories.base import Repository
from core.store.repositories.credentials import STAMP_COLUMNS
from core.store.repositories.tools import current_lists


class GatewayRepository(Repository):
    def changes(self) -> tuple[Any, ...]:
        """A value that differs whenever anything a gateway serves may have changed: the gateway's
        own counter plus aggregates over connectors, agents, credentials and current tool lists.
        A token refresh changes none of them."""
        with self._store.tx() as tx:
            return (
                tx.scalar("SELECT generation FROM gateway_changes"),
                *tx.execute("SELECT count(*), max(updated_at) FROM connectors").fetchone(),
                *tx.execute("SELECT count(*), max(created_at) FROM agents").fetchone(),
                *tx.execute("SELECT count(*), max(id) FROM tool_snapshots WHERE is_current").fetchone(),
                # Each credential's stamp (`CredentialRepository.stamp`).
                tuple(
                    tuple(row)
                    for row in tx.execute(
                        f"SELECT connector_id, agent_id, {STAMP_COLUMNS} FROM credentials "
                        "ORDER BY connector_id, agent_id"
                    ).fetchall()
                ),
            )

    def agent_catalog(self, agent_id: str) -> list[dict[str, Any]]:
        """The current tools `agent_id` sees, per connector its own list where it has one, else the
        connector's shared list: connector (name and id), owner, tool name, the wire definition
        (`definition`), its hash and the approved hash."""
        with self._store.tx() as tx:
            lists = current_lists(tx, None, agent_id)
            if not lists:
                return []
            found = tx.rows(
                "SELECT c.name AS connector, s.connector_id, s.agent_id AS owner, t.name, t.raw, "
                "t.def_hash, a.approved_hash FROM tools t JOIN tool_snapshots s ON s.id = t.snapshot_id "
                "JOIN connectors c ON c.id = s.connector_id LEFT JOIN tool_approvals a "
                "ON a.connector_id = s.connector_id AND a.agent_id = s.agent_id AND a.tool = t.name "
                f"WHERE {tx.engine.among('t.snapshot_id', 'BIGINT')} ORDER BY c.name, t.name",
                [lists],
            )
        for row in found:
            row["definition"] = json.loads(row.pop("raw"))
        return found

    def heartbeat(self, instance_id: str, started_at: float, stale_after: float) -> int:
        """Record that this gateway process is alive; returns how many are (this one included)."""
        now = time.time()
        with self._store.tx() as tx:
            tx.execute(
                "INSERT INTO gateway_instances (id, started_at, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                [instance_id, started_at, now],
            )
            tx.execute("DELETE FROM gateway_instances WHERE seen_at < ?", [now - stale_after])
            return tx.scalar("SELECT count(*) FROM gateway_instances")

    def remove_instance(self, instance_id: str) -> None:
        with self._store.tx() as tx:
            tx.execute("DELETE FROM gateway_instances WHERE id = ?", [instance_id])


def bump(tx: Tx) -> None:
    """Tell every gateway process that what some agent may see or do has changed."""
    tx.execute("UPDATE gateway_changes SET generation = generation + 1 WHERE id = 1")
