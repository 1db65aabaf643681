"""The agent gateway's rows: agent tokens (hashes only), per-agent policies, tool pinning, the
gateway's audit rows, and the change counter gateway processes poll.

Portable SQL (`?` placeholders, no engine-specific functions) over the store's transaction, so the
same statements run on DuckDB and PostgreSQL. Every write that changes what some agent may see or
do through the gateway bumps `gateway_changes.generation` in the same transaction; a gateway process
compares `changes()` (that counter plus cheap aggregates over the tables other faces write) between
polls instead of re-reading everything.

Pinning (issue #15 point 5). A tool's approval is the `tools.def_hash` of the definition an operator
(or, with `approval = 'auto'`, the first sync that saw the tool) approved. State of a current tool:
`approved` (hashes equal), `quarantined` (an approval exists for another definition: it changed),
`pending` (never approved: a new tool under `manual`). Approval rows outlive a tool's removal, so a
tool removed and re-added with another definition is quarantined, not approved as new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigurationError, NotFoundError
from core.store.db import Store

APPROVAL_MODES = ("auto", "manual")
_INSERT_CHUNK = 200  # rows per INSERT statement (parameters per statement stay in the low thousands)
TOOL_STATES = ("approved", "quarantined", "pending")


@dataclass(frozen=True)
class TokenRow:
    """An agent token as stored: never the token, only facts about it."""

    id: str
    agent: str
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
class PolicyRow:
    agent: str
    rules: tuple[dict[str, Any], ...]
    requests_per_minute: int | None
    max_concurrent_calls: int | None


@dataclass(frozen=True)
class ActiveToken:
    """What a gateway needs to authenticate a request (loaded for every active token)."""

    id: str
    agent_id: str
    token_hash: str
    expires_at: float | None


class GatewayRepository:
    """The gateway's tables over a `Store` (one short transaction per method)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        # The kernel's transaction: joins the caller's when one is open (e.g. a sync's commit).
        with self._store.tx() as con:
            yield con

    # --- tokens ---------------------------------------------------------------------------------

    def create_token(
        self, agent: str, token_id: str, token_hash: str, *, label: str = "", expires_at: float | None = None
    ) -> TokenRow:
        with self._tx() as con:
            agent_id = self._store.get_agent(agent).id
            con.execute(
                "INSERT INTO agent_tokens (id, agent_id, token_hash, label, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [token_id, agent_id, token_hash, label, time.time(), expires_at],
            )
            _bump(con)
            return self._token(con, agent_id, token_id)

    def list_tokens(self, agent: str) -> list[TokenRow]:
        with self._tx() as con:
            agent_id = self._store.get_agent(agent).id
            return [
                _token_row(r)
                for r in con.rows(_TOKEN_SELECT + " WHERE t.agent_id = ? ORDER BY t.created_at", [agent_id])
            ]

    def revoke_token(self, agent: str, token_id: str) -> TokenRow:
        """Revoke one of `agent`'s tokens (another agent's token id is "not found")."""
        with self._tx() as con:
            agent_id = self._store.get_agent(agent).id
            token = self._token(con, agent_id, token_id)
            if token.revoked_at is None:
                con.execute(
                    "UPDATE agent_tokens SET revoked_at = ? WHERE id = ? AND agent_id = ?",
                    [time.time(), token_id, agent_id],
                )
                _bump(con)
            return self._token(con, agent_id, token_id)

    def active_tokens(self, now: float) -> list[ActiveToken]:
        with self._tx() as con:
            return [
                ActiveToken(*row)
                for row in con.execute(
                    "SELECT id, agent_id, token_hash, expires_at FROM agent_tokens "
                    "WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                    [now],
                ).fetchall()
            ]

    def _token(self, con: Any, agent_id: str, token_id: str) -> TokenRow:
        found = con.rows(_TOKEN_SELECT + " WHERE t.agent_id = ? AND t.id = ?", [agent_id, token_id])
        if not found:
            raise NotFoundError(
                f"no token {token_id!r} for this agent", hint="`switchboard agent token list AGENT` shows ids"
            )
        return _token_row(found[0])

    # --- policies -------------------------------------------------------------------------------

    def policy(self, agent: str) -> PolicyRow:
        with self._tx() as con:
            info = self._store.get_agent(agent)
            found = con.rows("SELECT * FROM agent_policies WHERE agent_id = ?", [info.id])
        if not found:
            return PolicyRow(info.name, (), None, None)
        row = found[0]
        return PolicyRow(
            info.name,
            tuple(json.loads(row["rules"])),
            row["requests_per_minute"],
            row["max_concurrent_calls"],
        )

    def set_policy(
        self,
        agent: str,
        rules: Sequence[Mapping[str, Any]],
        requests_per_minute: int | None,
        max_concurrent_calls: int | None,
    ) -> PolicyRow:
        with self._tx() as con:
            agent_id = self._store.get_agent(agent).id
            con.execute(
                "INSERT INTO agent_policies (agent_id, rules, requests_per_minute, max_concurrent_calls, "
                "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET rules = excluded.rules, "
                "requests_per_minute = excluded.requests_per_minute, "
                "max_concurrent_calls = excluded.max_concurrent_calls, updated_at = excluded.updated_at",
                [agent_id, json.dumps(list(rules)), requests_per_minute, max_concurrent_calls, time.time()],
            )
            _bump(con)
        return self.policy(agent)

    def policies(self) -> dict[str, PolicyRow]:
        """Every agent's policy by agent id (agents without one are absent)."""
        with self._tx() as con:
            found = con.rows(
                "SELECT p.*, a.name FROM agent_policies p JOIN agents a ON a.id = p.agent_id",
            )
        return {
            r["agent_id"]: PolicyRow(
                r["name"], tuple(json.loads(r["rules"])), r["requests_per_minute"], r["max_concurrent_calls"]
            )
            for r in found
        }

    # --- pinning --------------------------------------------------------------------------------

    def approval_mode(self, connector: str) -> str:
        with self._tx() as con:
            connector_id = self._store.get_connector(connector).id
            row = con.execute(
                "SELECT approval FROM tool_pinning WHERE connector_id = ?", [connector_id]
            ).fetchone()
        return row[0] if row else "auto"

    def set_approval_mode(self, connector: str, mode: str) -> str:
        if mode not in APPROVAL_MODES:
            raise ConfigurationError(f"approval must be one of {', '.join(APPROVAL_MODES)}, not {mode!r}")
        with self._tx() as con:
            connector_id = self._store.get_connector(connector).id
            con.execute(
                "INSERT INTO tool_pinning (connector_id, approval, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (connector_id) DO UPDATE SET approval = excluded.approval, "
                "updated_at = excluded.updated_at",
                [connector_id, mode, time.time()],
            )
            _bump(con)
        return mode

    def pin_new_tools(self, snapshot_ids: Sequence[int]) -> int:
        """After a sync recorded these snapshots: approve the tools never seen before on connectors
        whose approval is `auto` (the first sync approves). Call in the sync's own transaction, so
        no process ever sees the new list without its approvals."""
        if not snapshot_ids:
            return 0
        marks = ", ".join("?" for _ in snapshot_ids)
        with self._tx() as con:
            added = con.execute(
                "INSERT INTO tool_approvals (connector_id, agent_id, tool, approved_hash, approved_at, approved_by) "
                "SELECT t.connector_id, t.agent_id, t.name, t.def_hash, ?, 'auto' FROM current_tools t "
                "LEFT JOIN tool_pinning p ON p.connector_id = t.connector_id "
                f"WHERE t.snapshot_id IN ({marks}) AND coalesce(p.approval, 'auto') = 'auto' "
                "AND NOT EXISTS (SELECT 1 FROM tool_approvals a WHERE a.connector_id = t.connector_id "
                "AND a.agent_id = t.agent_id AND a.tool = t.name) RETURNING 1",
                [time.time(), *snapshot_ids],
            ).fetchall()
            _bump(con)
            return len(added)

    def tool_reviews(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        """Every current tool of the connector's list (the agent's own for per_agent) with its
        state, and for tools not approved the approved and current definitions (when the approved
        one is still in the kept history) so an operator can read the diff."""
        with self._tx() as con:
            connector_id, owner = self._owner(connector, agent)
            found = con.rows(
                "SELECT c.name, c.def_hash, a.approved_hash, a.approved_at, a.approved_by, t.raw "
                "FROM current_tools c JOIN tools t ON t.snapshot_id = c.snapshot_id AND t.name = c.name "
                "LEFT JOIN tool_approvals a ON a.connector_id = c.connector_id AND a.agent_id = c.agent_id "
                "AND a.tool = c.name WHERE c.connector_id = ? AND c.agent_id = ? ORDER BY c.name",
                [connector_id, owner],
            )
            for row in found:
                row["state"] = tool_state(row["def_hash"], row["approved_hash"])
                row["current"] = json.loads(row.pop("raw"))
                row["approved"] = None
                if row["state"] == "quarantined":
                    old = con.execute(
                        "SELECT t.raw FROM tools t JOIN tool_snapshots s ON s.id = t.snapshot_id "
                        "WHERE s.connector_id = ? AND s.agent_id = ? AND t.name = ? AND t.def_hash = ? LIMIT 1",
                        [connector_id, owner, row["name"], row["approved_hash"]],
                    ).fetchone()
                    row["approved"] = json.loads(old[0]) if old else None
            return found

    def approve(self, connector: str, agent: str | None, tools: Sequence[str] | None, by: str) -> list[str]:
        """Approve the current definition of `tools` (None: every tool not approved); returns the
        names approved. An unknown name is refused before anything is written."""
        with self._tx() as con:
            connector_id, owner = self._owner(connector, agent)
            current = dict(
                con.execute(
                    "SELECT name, def_hash FROM current_tools WHERE connector_id = ? AND agent_id = ?",
                    [connector_id, owner],
                ).fetchall()
            )
            if tools is None:
                approved = dict(
                    con.execute(
                        "SELECT tool, approved_hash FROM tool_approvals WHERE connector_id = ? AND agent_id = ?",
                        [connector_id, owner],
                    ).fetchall()
                )
                names = sorted(n for n, h in current.items() if approved.get(n) != h)
            else:
                unknown = sorted(set(tools) - current.keys())
                if unknown:
                    raise NotFoundError(
                        f"no current tool {', '.join(map(repr, unknown))} on connector {connector!r}",
                        hint="sync the connector, then `switchboard pinning review` lists its tools",
                    )
                names = sorted(set(tools))
            now = time.time()
            for name in names:
                con.execute(
                    "INSERT INTO tool_approvals (connector_id, agent_id, tool, approved_hash, approved_at, "
                    "approved_by) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (connector_id, agent_id, tool) DO UPDATE "
                    "SET approved_hash = excluded.approved_hash, approved_at = excluded.approved_at, "
                    "approved_by = excluded.approved_by",
                    [connector_id, owner, name, current[name], now, by],
                )
            if names:
                _bump(con)
            return names

    def _owner(self, connector: str, agent: str | None) -> tuple[str, str]:
        """(connector id, whose list): per_agent connectors keep one list per agent."""
        conn = self._store.get_connector(connector)
        if conn.credential_mode == "shared":
            return conn.id, ""
        if agent is None:
            raise ConfigurationError(
                f"connector {conn.name!r} keeps one tool list per agent: name the agent",
                hint="pass --agent NAME",
            )
        return conn.id, self._store.get_agent(agent).id

    # --- what a gateway process reads -----------------------------------------------------------

    def changes(self) -> tuple[Any, ...]:
        """A value that differs whenever anything a gateway serves may have changed: the gateway's
        own counter plus aggregates over the tables the dashboard and CLI write (connectors, agents,
        credentials, current tool lists). A token refresh changes none of them."""
        with self._tx() as con:
            return (
                con.execute("SELECT generation FROM gateway_changes").fetchone()[0],
                *con.execute("SELECT count(*), max(updated_at) FROM connectors").fetchone(),
                *con.execute("SELECT count(*), max(created_at) FROM agents").fetchone(),
                *con.execute("SELECT count(*), max(id) FROM tool_snapshots WHERE is_current").fetchone(),
                # Each credential's stamp, as `Store.credential_stamp` defines it.
                tuple(
                    con.execute(
                        "SELECT connector_id, agent_id, kind, created_at, CASE WHEN kind IN ('bearer', 'api_key') "
                        "THEN fingerprint END FROM credentials ORDER BY connector_id, agent_id"
                    ).fetchall()
                ),
            )

    def agent_catalog(self, agent_id: str) -> list[dict[str, Any]]:
        """The current tools `agent_id` sees, per connector its own list where it has one, else the
        connector's shared list: connector (name and id), the wire definition and the approved hash."""
        with self._tx() as con:
            chosen: dict[str, int] = {}
            for snapshot_id, connector_id, owner in con.execute(
                "SELECT id, connector_id, agent_id FROM tool_snapshots WHERE is_current AND agent_id IN ('', ?)",
                [agent_id],
            ).fetchall():
                if connector_id not in chosen or owner == agent_id:
                    chosen[connector_id] = snapshot_id
            if not chosen:
                return []
            marks = ", ".join("?" for _ in chosen)
            found = con.rows(
                "SELECT c.name AS connector, s.connector_id, s.agent_id AS owner, t.name, t.raw, "
                "t.def_hash, a.approved_hash FROM tools t JOIN tool_snapshots s ON s.id = t.snapshot_id "
                "JOIN connectors c ON c.id = s.connector_id LEFT JOIN tool_approvals a "
                "ON a.connector_id = s.connector_id AND a.agent_id = s.agent_id AND a.tool = t.name "
                f"WHERE t.snapshot_id IN ({marks}) ORDER BY c.name, t.name",
                list(chosen.values()),
            )
        for row in found:
            row["definition"] = json.loads(row.pop("raw"))
        return found

    def heartbeat(self, instance_id: str, started_at: float, stale_after: float) -> int:
        """Record that this gateway process is alive; returns how many are (this one included)."""
        now = time.time()
        with self._tx() as con:
            con.execute(
                "INSERT INTO gateway_instances (id, started_at, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                [instance_id, started_at, now],
            )
            con.execute("DELETE FROM gateway_instances WHERE seen_at < ?", [now - stale_after])
            return con.execute("SELECT count(*) FROM gateway_instances").fetchone()[0]

    def remove_instance(self, instance_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM gateway_instances WHERE id = ?", [instance_id])

    def record_calls(self, calls: Sequence[Mapping[str, Any]]) -> None:
        """Append gateway calls to the audit log (one transaction for the batch) and note when each
        token was last used. Rows carry `called_at`, `agent_id`, `connector_id`, `tool`, `status`,
        `outcome`, `token_id`, `latency_ms`, `arguments` (already redacted JSON) and `error`."""
        if not calls:
            return
        columns = (
            "called_at",
            "agent_id",
            "connector_id",
            "tool",
            "arguments",
            "status",
            "latency_ms",
            "error",
        )
        columns += ("token_id", "outcome")
        with self._tx() as con:
            # Multi-row VALUES, not one INSERT per row: DuckDB takes ~1 ms of CPU per single-row insert.
            for start in range(0, len(calls), _INSERT_CHUNK):
                chunk = calls[start : start + _INSERT_CHUNK]
                row = "(?, 'gateway', " + ", ".join("?" for _ in columns[1:]) + ")"
                con.execute(
                    f"INSERT INTO audit_log (called_at, operator, {', '.join(columns[1:])}) VALUES "
                    + ", ".join(row for _ in chunk),
                    [call.get(column) for call in chunk for column in columns],
                )
            last_used: dict[str, float] = {}
            for call in calls:
                last_used[call["token_id"]] = max(last_used.get(call["token_id"], 0.0), call["called_at"])
            for token_id, when in last_used.items():
                con.execute("UPDATE agent_tokens SET last_used_at = ? WHERE id = ?", [when, token_id])


def tool_state(current_hash: str, approved_hash: str | None) -> str:
    if approved_hash is None:
        return "pending"
    return "approved" if approved_hash == current_hash else "quarantined"


def _bump(con: Any) -> None:
    con.execute("UPDATE gateway_changes SET generation = generation + 1 WHERE id = 1")


_TOKEN_SELECT = (
    "SELECT t.id, a.name AS agent, t.label, t.created_at, t.expires_at, t.revoked_at, t.last_used_at "
    "FROM agent_tokens t JOIN agents a ON a.id = t.agent_id"
)


def _token_row(row: dict[str, Any]) -> TokenRow:
    return TokenRow(**row)
