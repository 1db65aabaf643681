"""The two append-only histories: the audit log (one row per tool call) and the auth trace (the
steps of authorization attempts). Both are pruned by `core.store.retention`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import ConfigurationError
from core.net.urls import redact_url
from core.oauth.storage import CredentialKey
from core.oauth.trace import TraceEvent
from core.redaction import redact_arguments
from core.store.engine import Tx
from core.store.repositories.base import Repository, owner_filter, require

_INSERT_CHUNK = 200  # rows per INSERT statement (parameters per statement stay in the low thousands)
_GATEWAY_COLUMNS = (
    "called_at",
    "agent_id",
    "connector_id",
    "tool",
    "arguments",
    "status",
    "latency_ms",
    "error",
    "token_id",
    "outcome",
)


class AuditRepository(Repository):
    def record(
        self,
        *,
        connector_id: str,
        tool: str,
        status: str,
        agent_id: str = "",
        operator: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        latency_ms: float | None = None,
        credential_fingerprint: str | None = None,
        error: str | None = None,
    ) -> int:
        """Append a tool call; returns its id. Arguments under secret-looking keys are redacted here
        too; the credential appears only as its 8-hex fingerprint."""
        require(status, ("ok", "tool_error", "error"), "status")
        if credential_fingerprint is not None and not re.fullmatch(r"[0-9a-f]{8}", credential_fingerprint):
            raise ConfigurationError(
                "credential_fingerprint must be 8 lowercase hex digits (see crypto.fingerprint)"
            )
        with self._store.tx() as tx:
            row_id = tx.scalar(
                "INSERT INTO audit_log (called_at, operator, agent_id, connector_id, tool, arguments, status, "
                "latency_ms, credential_fingerprint, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    time.time(),
                    operator,
                    agent_id,
                    connector_id,
                    tool,
                    None if arguments is None else json.dumps(redact_arguments(arguments), default=str),
                    status,
                    latency_ms,
                    credential_fingerprint,
                    error,
                ],
            )
        self._store.retention.due()
        return row_id

    def record_gateway_calls(self, calls: Sequence[Mapping[str, Any]]) -> None:
        """Append calls made through the agent gateway (operator `gateway`) in one transaction, and
        note when each token was last used. Rows carry `called_at`, `agent_id`, `connector_id`,
        `tool`, `status`, `outcome` (why a call was refused, or how it ended), `token_id`,
        `latency_ms`, `arguments` (already redacted JSON) and `error`."""
        if not calls:
            return
        with self._store.tx() as tx:
            # Multi-row VALUES, not one INSERT per row: DuckDB takes ~1 ms of CPU per single-row insert.
            for start in range(0, len(calls), _INSERT_CHUNK):
                chunk = calls[start : start + _INSERT_CHUNK]
                row = "(?, 'gateway', " + ", ".join("?" for _ in _GATEWAY_COLUMNS[1:]) + ")"
                tx.execute(
                    f"INSERT INTO audit_log (called_at, operator, {', '.join(_GATEWAY_COLUMNS[1:])}) VALUES "
                    + ", ".join(row for _ in chunk),
                    [call.get(column) for call in chunk for column in _GATEWAY_COLUMNS],
                )
            last_used: dict[str, float] = {}
            for call in calls:
                last_used[call["token_id"]] = max(last_used.get(call["token_id"], 0.0), call["called_at"])
            self._store.agent_tokens.mark_used(tx, last_used)
        self._store.retention.due()

    def list(
        self,
        *,
        connector_id: str | None = None,
        agent_id: str | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Newest first, with connector and agent names."""
        condition, params = owner_filter("l", connector_id, agent_id)
        with self._store.tx() as tx:
            rows = tx.rows(
                "SELECT l.*, c.name AS connector, a.name AS agent FROM audit_log l "
                "LEFT JOIN connectors c ON c.id = l.connector_id "
                "LEFT JOIN agents a ON a.id = l.agent_id"
                + condition
                + " ORDER BY l.id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        for row in rows:
            row["arguments"] = json.loads(row["arguments"]) if row["arguments"] is not None else None
        return rows

    def prune(self, tx: Tx, *, older_than: float | None, keep_rows: int | None) -> int:
        return _prune(tx, "audit_log", "called_at", older_than, keep_rows)


class AuthTraceRepository(Repository):
    def record(self, key: CredentialKey, attempt_id: str, event: TraceEvent) -> None:
        """Append one step of an authorization attempt; the URL is stored without userinfo, query or
        fragment. Several steps: wrap the calls in `store.session()`."""
        with self._store.tx() as tx:
            tx.execute(
                "INSERT INTO auth_trace (attempt_id, connector_id, agent_id, step, method, url, http_status, "
                "duration_ms, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    attempt_id,
                    key.connector_id,
                    key.agent_id,
                    event.step,
                    event.method,
                    redact_url(event.url),
                    event.status,
                    event.duration_ms,
                    event.detail,
                    time.time(),
                ],
            )
        self._store.retention.due()

    def attempt(self, key: CredentialKey, attempt_id: str | None = None) -> list[dict[str, Any]]:
        """The steps of one attempt (default: the latest) in order."""
        with self._store.tx() as tx:
            if attempt_id is None:
                attempt_id = tx.scalar(
                    "SELECT attempt_id FROM auth_trace WHERE connector_id = ? AND agent_id = ? "
                    "ORDER BY id DESC LIMIT 1",
                    [key.connector_id, key.agent_id],
                )
                if attempt_id is None:
                    return []
            return tx.rows("SELECT * FROM auth_trace WHERE attempt_id = ? ORDER BY id", [attempt_id])

    def prune(self, tx: Tx, *, older_than: float | None, keep_rows: int | None) -> int:
        return _prune(tx, "auth_trace", "recorded_at", older_than, keep_rows)


def _prune(tx: Tx, table: str, timestamp: str, older_than: float | None, keep_rows: int | None) -> int:
    """Delete rows older than `older_than` (epoch seconds) and all but the newest `keep_rows`."""
    deleted = 0
    if older_than is not None:
        deleted += len(
            tx.execute(f"DELETE FROM {table} WHERE {timestamp} < ? RETURNING 1", [older_than]).fetchall()
        )
    if keep_rows is not None:
        boundary = tx.scalar(f"SELECT id FROM {table} ORDER BY id DESC LIMIT 1 OFFSET ?", [keep_rows])
        if boundary is not None:
            deleted += len(
                tx.execute(f"DELETE FROM {table} WHERE id <= ? RETURNING 1", [boundary]).fetchall()
            )
    return deleted
