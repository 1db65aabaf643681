"""What an agent may do through the gateway: its tokens (hashes only) and its policy.

A token is stored as the SHA-256 hex of the token (`core.access.tokens`); the token itself is shown
once and never stored. Every write here changes what some agent may do through the gateway, so it
moves the gateway's change counter in the same transaction (`gateway.bump`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import NotFoundError
from core.store.engine import Tx
from core.store.records import ActiveToken, AgentPolicy, AgentToken
from core.store.repositories.agents import agent_missing
from core.store.repositories.base import Repository
from core.store.repositories.gateway import bump

_TOKEN_SELECT = (
    "SELECT t.id, a.name AS agent, t.label, t.created_at, t.expires_at, t.revoked_at, t.last_used_at "
    "FROM agent_tokens t JOIN agents a ON a.id = t.agent_id"
)


class AgentTokenRepository(Repository):
    def create(
        self,
        agent_id: str,
        token_id: str,
        token_hash: str,
        *,
        label: str = "",
        expires_at: float | None = None,
    ) -> AgentToken:
        with self._store.tx() as tx:
            if not tx.scalar("SELECT 1 FROM agents WHERE id = ?", [agent_id]):
                raise agent_missing(agent_id)
            tx.execute(
                "INSERT INTO agent_tokens (id, agent_id, token_hash, label, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [token_id, agent_id, token_hash, label, time.time(), expires_at],
            )
            bump(tx)
            return _token(tx, agent_id, token_id)

    def list(self, agent_id: str) -> list[AgentToken]:
        with self._store.tx() as tx:
            rows = tx.rows(_TOKEN_SELECT + " WHERE t.agent_id = ? ORDER BY t.created_at", [agent_id])
        return [AgentToken(**r) for r in rows]

    def revoke(self, agent_id: str, token_id: str) -> AgentToken:
        """Revoke one of the agent's tokens (another agent's token id is "not found")."""
        with self._store.tx() as tx:
            if _token(tx, agent_id, token_id).revoked_at is None:
                tx.execute(
                    "UPDATE agent_tokens SET revoked_at = ? WHERE id = ? AND agent_id = ?",
                    [time.time(), token_id, agent_id],
                )
                bump(tx)
            return _token(tx, agent_id, token_id)

    def active(self, now: float) -> list[ActiveToken]:
        """Every token a gateway may accept at `now` (neither revoked nor expired)."""
        with self._store.tx() as tx:
            rows = tx.execute(
                "SELECT id, agent_id, token_hash, expires_at FROM agent_tokens "
                "WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                [now],
            ).fetchall()
        return [ActiveToken(*row) for row in rows]

    def mark_used(self, tx: Tx, last_used: Mapping[str, float]) -> None:
        """Note when each token (by id) was last used: not a change the gateways need to see."""
        for token_id, when in last_used.items():
            tx.execute("UPDATE agent_tokens SET last_used_at = ? WHERE id = ?", [when, token_id])


class PolicyRepository(Repository):
    def get(self, agent_id: str) -> AgentPolicy:
        """The agent's policy (no rules and the gateway's default limits when none was set)."""
        with self._store.tx() as tx:
            name = tx.scalar("SELECT name FROM agents WHERE id = ?", [agent_id])
            if name is None:
                raise agent_missing(agent_id)
            row = tx.one("SELECT * FROM agent_policies WHERE agent_id = ?", [agent_id])
        return _policy({**row, "name": name}) if row else AgentPolicy(name, (), None, None)

    def set(
        self,
        agent_id: str,
        rules: Sequence[Mapping[str, Any]],
        requests_per_minute: int | None,
        max_concurrent_calls: int | None,
    ) -> AgentPolicy:
        with self._store.tx() as tx:
            if not tx.scalar("SELECT 1 FROM agents WHERE id = ?", [agent_id]):
                raise agent_missing(agent_id)
            tx.execute(
                "INSERT INTO agent_policies (agent_id, rules, requests_per_minute, max_concurrent_calls, "
                "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET rules = excluded.rules, "
                "requests_per_minute = excluded.requests_per_minute, "
                "max_concurrent_calls = excluded.max_concurrent_calls, updated_at = excluded.updated_at",
                [agent_id, json.dumps(list(rules)), requests_per_minute, max_concurrent_calls, time.time()],
            )
            bump(tx)
            return self.get(agent_id)

    def all(self) -> dict[str, AgentPolicy]:
        """Every agent's policy by agent id (agents without one are absent)."""
        with self._store.tx() as tx:
            rows = tx.rows("SELECT p.*, a.name FROM agent_policies p JOIN agents a ON a.id = p.agent_id")
        return {r["agent_id"]: _policy(r) for r in rows}


def _token(tx: Tx, agent_id: str, token_id: str) -> AgentToken:
    row = tx.one(_TOKEN_SELECT + " WHERE t.agent_id = ? AND t.id = ?", [agent_id, token_id])
    if row is None:
        raise NotFoundError(
            f"no token {token_id!r} for this agent", hint="`switchboard agent token list AGENT` shows ids"
        )
    return AgentToken(**row)


def _policy(row: dict[str, Any]) -> AgentPolicy:
    return AgentPolicy(
        row["name"], tuple(json.loads(row["rules"])), row["requests_per_minute"], row["max_concurrent_calls"]
    )
