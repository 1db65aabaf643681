"""Agents: the identities tools are called as; each may hold its own credential per connector."""

from __future__ import annotations

import time

from core.errors import ConfigurationError, NotFoundError
from core.models import AgentInfo
from core.store.engine import Tx
from core.store.repositories.base import Repository, delete_owned, new_id


class AgentRepository(Repository):
    def create(self, name: str, description: str = "") -> AgentInfo:
        with self._store.tx() as tx:
            if tx.scalar("SELECT 1 FROM agents WHERE name = ?", [name]):
                raise ConfigurationError(f"an agent named {name!r} already exists")
            agent = AgentInfo(id=new_id(), name=name, description=description, created_at=time.time())
            tx.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?)",
                [agent.id, agent.name, agent.description, agent.created_at],
            )
            return agent

    def describe(self, agent_id: str, description: str) -> AgentInfo:
        """Change the agent's description; its name, id and everything it holds stay."""
        with self._store.tx() as tx:
            tx.execute("UPDATE agents SET description = ? WHERE id = ?", [description, agent_id])
            return self._where(tx, "id", agent_id)

    def get(self, agent_id: str) -> AgentInfo:
        with self._store.tx() as tx:
            return self._where(tx, "id", agent_id)

    def named(self, name: str) -> AgentInfo:
        with self._store.tx() as tx:
            return self._where(tx, "name", name)

    def list(self) -> list[AgentInfo]:
        with self._store.tx() as tx:
            return [AgentInfo(**r) for r in tx.rows("SELECT * FROM agents ORDER BY name")]

    def delete(self, agent_id: str) -> None:
        """Remove the agent with its credentials, pending authorizations and per-agent tool lists."""
        with self._store.tx() as tx:
            delete_owned(tx, "agent_id", agent_id)
            tx.execute("DELETE FROM agents WHERE id = ?", [agent_id])

    @staticmethod
    def _where(tx: Tx, column: str, value: str) -> AgentInfo:
        row = tx.one(f"SELECT * FROM agents WHERE {column} = ?", [value])
        if row is None:
            raise agent_missing(value)
        return AgentInfo(**row)


def agent_missing(ref: str) -> NotFoundError:
    return NotFoundError(f"no agent {ref!r}", hint="list agents to see their names")
