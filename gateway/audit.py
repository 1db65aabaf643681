"""Gateway calls into the audit log, written in batches off the request path.

A store session costs tens of milliseconds of CPU (DuckDB opens the file per session) and
serializes with every other process, so a call never waits for its audit row: rows are queued, and
the catalog's poll writes whatever accumulated inside the store session it opens anyway, once per
poll interval (one session a second, not one for the poll and one for the audit). Arguments are
redacted (`core.redaction`) when the batch is written. A crash loses at most the last interval's
rows; a batch the store refuses, or that no session could be opened for, is queued again
(bounded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from core.errors import SwitchboardError
from core.redaction import redact_arguments
from core.store import Store

log = logging.getLogger(__name__)

MAX_PENDING = 50_000


@dataclass
class AuditBatch:
    """Rows taken from the queue for one write; `written` once the store has committed them."""

    rows: list[dict[str, Any]]
    written: bool = field(default=False)


class AuditWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[dict[str, Any]] = []

    def add(
        self,
        *,
        agent_id: str,
        token_id: str,
        connector_id: str,
        tool: str,
        outcome: str,
        arguments: Any = None,
        latency_ms: float | None = None,
        error: str | None = None,
    ) -> None:
        """Queue one call. `outcome`: ok | tool_error | upstream_error | timeout | denied |
        quarantined | pending | not_connected | unknown_tool | rate_limited | busy | too_large."""
        if len(self._pending) >= MAX_PENDING:
            log.error("audit queue full: dropping the row for %s", tool)
            return
        status = {"ok": "ok", "tool_error": "tool_error"}.get(outcome, "error")
        self._pending.append(
            {
                "called_at": time.time(),
                "agent_id": agent_id,
                "token_id": token_id,
                "connector_id": connector_id,
                "tool": tool,
                "status": status,
                "outcome": outcome,
                "arguments": arguments,
                "latency_ms": latency_ms,
                "error": error[:500] if error else None,
            }
        )

    def take(self) -> AuditBatch | None:
        """Everything queued, for one `write` (on the event loop; None when nothing is queued)."""
        rows, self._pending = self._pending, []
        return AuditBatch(rows) if rows else None

    def write(self, batch: AuditBatch) -> None:
        """Write a batch in one transaction (in a worker thread, inside a store session when the
        caller holds one). Never raises: a refused batch stays unwritten for `settle`."""
        try:
            self._store.audit.record_gateway_calls(
                [
                    {**row, "arguments": json.dumps(redact_arguments(row["arguments"]), default=str)}
                    if row["arguments"] is not None
                    else row
                    for row in batch.rows
                ]
            )
        except SwitchboardError as exc:
            log.error("could not write %d audit rows (kept for the next attempt): %s", len(batch.rows), exc)
            return
        batch.written = True

    def settle(self, batch: AuditBatch | None) -> None:
        """After a write attempt (on the event loop): an unwritten batch goes back to the queue."""
        if batch is not None and not batch.written:
            self._pending[:0] = batch.rows[: MAX_PENDING - len(self._pending)]

    async def flush(self) -> None:
        """Write what is queued now, in a store session of its own (shutdown)."""
        batch = self.take()
        if batch is not None:
            await asyncio.to_thread(self.write, batch)
            self.settle(batch)
