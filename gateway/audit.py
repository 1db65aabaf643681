"""Gateway calls into the audit log, written in batches off the request path.

A store session costs several milliseconds (DuckDB opens the file per session) and serializes with
every other process, so a call never waits for its audit row: rows are queued and one background
task writes whatever accumulated every `interval` seconds in one transaction. Arguments are redacted
(`core.redaction`) when the batch is written. A crash loses at most the last interval's rows; a
store that refuses a batch is logged and the batch retried with the next one (bounded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from core.errors import SwitchboardError
from core.redaction import redact_arguments
from core.store import Store

log = logging.getLogger(__name__)

MAX_PENDING = 50_000


class AuditWriter:
    def __init__(self, store: Store, *, interval: float = 0.25) -> None:
        self._store = store
        self._interval = interval
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False

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

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        for row in batch:
            if row["arguments"] is not None:
                row["arguments"] = json.dumps(redact_arguments(row["arguments"]), default=str)
        try:
            await asyncio.to_thread(self._store.audit.record_gateway_calls, batch)
        except SwitchboardError as exc:
            log.error("could not write %d audit rows (kept for the next attempt): %s", len(batch), exc)
            for row in batch:
                row["arguments"] = json.loads(row["arguments"]) if row["arguments"] else None
            self._pending[:0] = batch[: MAX_PENDING - len(self._pending)]

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except TimeoutError:
                pass
            await self.flush()
        await self.flush()
