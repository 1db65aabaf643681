"""Tool pinning (issue #15 point 5): which definition of each tool an operator approved.

A tool's approval is the `tools.def_hash` of the definition an operator (or, with `approval = 'auto'`,
the first sync that saw the tool) approved. State of a current tool: `approved` (hashes equal),
`quarantined` (an approval exists for another definition: it changed), `pending` (never approved: a
new tool under `manual`). Approval rows outlive a tool's removal, so a tool removed and re-added with
another definition is quarantined, not approved as new.

Lists are owned as tool snapshots are: `agent_id` is '' for a connector's shared list, the agent's id
for a per_agent connector's list of that agent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from core.errors import NotFoundError
from core.store.engine import Tx
from core.store.repositories.base import Repository, require
from core.store.repositories.gateway import bump

APPROVAL_MODES = ("auto", "manual")
TOOL_STATES = ("approved", "quarantined", "pending")


class PinningRepository(Repository):
    def mode(self, connector_id: str) -> str:
        """How the connector's tool definitions are approved: auto (first sync) or manual."""
        with self._store.tx() as tx:
            found = tx.scalar("SELECT approval FROM tool_pinning WHERE connector_id = ?", [connector_id])
        return found or "auto"

    def set_mode(self, connector_id: str, mode: str) -> str:
        require(mode, APPROVAL_MODES, "approval")
        with self._store.tx() as tx:
            tx.execute(
                "INSERT INTO tool_pinning (connector_id, approval, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (connector_id) DO UPDATE SET approval = excluded.approval, "
                "updated_at = excluded.updated_at",
                [connector_id, mode, time.time()],
            )
            bump(tx)
        return mode

    def pin_new(self, snapshot_ids: Sequence[int]) -> int:
        """After a sync recorded these snapshots: approve the tools never seen before on connectors
        whose approval is `auto` (the first sync approves). Call in the sync's own transaction, so
        no process ever sees the new list without its approvals. Returns how many were approved."""
        if not snapshot_ids:
            return 0
        with self._store.tx() as tx:
            added = tx.execute(
                "INSERT INTO tool_approvals (connector_id, agent_id, tool, approved_hash, approved_at, approved_by) "
                "SELECT t.connector_id, t.agent_id, t.name, t.def_hash, ?, 'auto' FROM current_tools t "
                "LEFT JOIN tool_pinning p ON p.connector_id = t.connector_id "
                f"WHERE {tx.engine.among('t.snapshot_id', 'BIGINT')} AND coalesce(p.approval, 'auto') = 'auto' "
                "AND NOT EXISTS (SELECT 1 FROM tool_approvals a WHERE a.connector_id = t.connector_id "
                "AND a.agent_id = t.agent_id AND a.tool = t.name) RETURNING 1",
                [time.time(), list(snapshot_ids)],
            ).fetchall()
            bump(tx)  # new current lists: every gateway rebuilds the views they feed
            return len(added)

    def reviews(self, connector_id: str, agent_id: str) -> list[dict[str, Any]]:
        """Every current tool of the list with its state, and for tools not approved the approved and
        current definitions (when the approved one is still in the kept history) so an operator can
        read the diff. Keys: name, def_hash, approved_hash, approved_at, approved_by, state, current,
        approved."""
        with self._store.tx() as tx:
            found = tx.rows(
                "SELECT c.name, c.def_hash, a.approved_hash, a.approved_at, a.approved_by, t.raw "
                "FROM current_tools c JOIN tools t ON t.snapshot_id = c.snapshot_id AND t.name = c.name "
                "LEFT JOIN tool_approvals a ON a.connector_id = c.connector_id AND a.agent_id = c.agent_id "
                "AND a.tool = c.name WHERE c.connector_id = ? AND c.agent_id = ? ORDER BY c.name",
                [connector_id, agent_id],
            )
            for row in found:
                row["state"] = tool_state(row["def_hash"], row["approved_hash"])
                row["current"] = json.loads(row.pop("raw"))
                row["approved"] = None
                if row["state"] == "quarantined":
                    old = tx.scalar(
                        "SELECT t.raw FROM tools t JOIN tool_snapshots s ON s.id = t.snapshot_id "
                        "WHERE s.connector_id = ? AND s.agent_id = ? AND t.name = ? AND t.def_hash = ? LIMIT 1",
                        [connector_id, agent_id, row["name"], row["approved_hash"]],
                    )
                    row["approved"] = json.loads(old) if old else None
            return found

    def approve(self, connector_id: str, agent_id: str, tools: Sequence[str] | None, by: str) -> list[str]:
        """Approve the current definition of `tools` (None: every tool not approved) in the list of
        (connector, agent or ''); returns the names approved. An unknown name is refused before
        anything is written."""
        with self._store.tx() as tx:
            current = dict(
                tx.execute(
                    "SELECT name, def_hash FROM current_tools WHERE connector_id = ? AND agent_id = ?",
                    [connector_id, agent_id],
                ).fetchall()
            )
            if tools is None:
                approved = dict(
                    tx.execute(
                        "SELECT tool, approved_hash FROM tool_approvals WHERE connector_id = ? AND agent_id = ?",
                        [connector_id, agent_id],
                    ).fetchall()
                )
                names = sorted(n for n, h in current.items() if approved.get(n) != h)
            else:
                unknown = sorted(set(tools) - current.keys())
                if unknown:
                    raise _no_current_tools(tx, connector_id, unknown)
                names = sorted(set(tools))
            now = time.time()
            for name in names:
                tx.execute(
                    "INSERT INTO tool_approvals (connector_id, agent_id, tool, approved_hash, approved_at, "
                    "approved_by) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (connector_id, agent_id, tool) DO UPDATE "
                    "SET approved_hash = excluded.approved_hash, approved_at = excluded.approved_at, "
                    "approved_by = excluded.approved_by",
                    [connector_id, agent_id, name, current[name], now, by],
                )
            if names:
                bump(tx)
            return names


def tool_state(current_hash: str, approved_hash: str | None) -> str:
    """approved | quarantined | pending (see the module docstring)."""
    if approved_hash is None:
        return "pending"
    return "approved" if approved_hash == current_hash else "quarantined"


def _no_current_tools(tx: Tx, connector_id: str, names: Sequence[str]) -> NotFoundError:
    connector = tx.scalar("SELECT name FROM connectors WHERE id = ?", [connector_id]) or connector_id
    return NotFoundError(
        f"no current tool {', '.join(map(repr, names))} on connector {connector!r}",
        hint="sync the connector, then `switchboard pinning review` lists its tools",
    )
