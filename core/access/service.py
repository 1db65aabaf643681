"""`AgentAccess`: what operators manage about agents' gateway access — tokens, policy, tool pinning.

One API for the CLI (`cli/access.py`) and the dashboard's agent page, like `Switchboard` for
the rest: agents and connectors are named here and resolved to ids once, then the store's
repositories (`agent_tokens`, `policies`, `pinning`) take the ids. Store calls run in a worker
thread; nothing here talks to the network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.access.policy import Policy, PolicyRule
from core.access.tokens import IssuedToken, hash_token, new_token, new_token_id
from core.errors import ConfigurationError
from core.store.db import Store
from core.store.records import AgentPolicy, AgentToken

MAX_TOKEN_DAYS = 3650


@dataclass(frozen=True)
class ToolReview:
    """One current tool of a connector and whether the gateway may serve it."""

    connector: str
    agent: str | None
    name: str
    state: str  # approved | quarantined (changed since approval) | pending (never approved)
    approved_at: float | None
    approved_by: str | None
    current: dict[str, Any] = field(repr=False)
    approved: dict[str, Any] | None = field(default=None, repr=False)  # None: not kept any more

    def changed_fields(self) -> list[str]:
        """Which parts of the definition differ from the approved one (quarantined tools)."""
        if self.approved is None:
            return []
        keys = sorted(set(self.current) | set(self.approved))
        return [k for k in keys if self.current.get(k) != self.approved.get(k)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "agent": self.agent,
            "name": self.name,
            "state": self.state,
            "approved_at": self.approved_at,
            "approved_by": self.approved_by,
            "changed": self.changed_fields(),
            "current": self.current,
            "approved": self.approved,
        }


class AgentAccess:
    def __init__(self, store: Store, *, operator: str = "operator") -> None:
        self.store = store
        self.operator = operator

    async def _db(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)

    # --- tokens ---------------------------------------------------------------------------------

    async def create_token(
        self, agent: str, *, expires_in_days: float | None = None, label: str = ""
    ) -> IssuedToken:
        """A new token for `agent`; its plaintext is in the result only, never stored."""
        if expires_in_days is not None and not 0 < expires_in_days <= MAX_TOKEN_DAYS:
            raise ConfigurationError(f"--expires-in must be between 0 and {MAX_TOKEN_DAYS} days")
        token, token_id = new_token(), new_token_id()
        expires_at = time.time() + expires_in_days * 86400 if expires_in_days is not None else None
        agent_id = await self._agent_id(agent)
        row = await self._db(
            self.store.agent_tokens.create,
            agent_id,
            token_id,
            hash_token(token),
            label=label.strip(),
            expires_at=expires_at,
        )
        return IssuedToken(row.id, row.agent, row.label, row.expires_at, token)

    async def list_tokens(self, agent: str) -> list[AgentToken]:
        return await self._db(self.store.agent_tokens.list, await self._agent_id(agent))

    async def revoke_token(self, agent: str, token_id: str) -> AgentToken:
        return await self._db(self.store.agent_tokens.revoke, await self._agent_id(agent), token_id)

    # --- policy ---------------------------------------------------------------------------------

    async def policy(self, agent: str) -> Policy:
        return _policy(await self._db(self.store.policies.get, await self._agent_id(agent)))

    async def add_rule(self, agent: str, rule: PolicyRule) -> Policy:
        current = await self.policy(agent)
        return await self._save(
            current.agent, [*current.rules, rule], current.requests_per_minute, current.max_concurrent_calls
        )

    async def remove_rule(self, agent: str, index: int) -> Policy:
        """Remove the rule at `index` (1-based, as `policy show` numbers them)."""
        current = await self.policy(agent)
        if not 1 <= index <= len(current.rules):
            raise ConfigurationError(
                f"agent {agent} has no rule #{index}",
                hint="`switchboard policy show AGENT` numbers the rules",
            )
        rules = [r for i, r in enumerate(current.rules, 1) if i != index]
        return await self._save(
            current.agent, rules, current.requests_per_minute, current.max_concurrent_calls
        )

    async def set_limits(
        self, agent: str, *, requests_per_minute: int | None = None, max_concurrent_calls: int | None = None
    ) -> Policy:
        """Set the agent's limits; 0 returns a limit to the gateway's default."""
        for value in (requests_per_minute, max_concurrent_calls):
            if value is not None and value < 0:
                raise ConfigurationError("limits are positive numbers (0: the gateway's default)")
        current = await self.policy(agent)
        rpm = current.requests_per_minute if requests_per_minute is None else requests_per_minute or None
        concurrent = (
            current.max_concurrent_calls if max_concurrent_calls is None else max_concurrent_calls or None
        )
        return await self._save(current.agent, list(current.rules), rpm, concurrent)

    async def _save(
        self, agent: str, rules: Sequence[PolicyRule], rpm: int | None, concurrent: int | None
    ) -> Policy:
        agent_id = await self._agent_id(agent)
        return _policy(
            await self._db(self.store.policies.set, agent_id, [r.as_dict() for r in rules], rpm, concurrent)
        )

    # --- tool pinning ---------------------------------------------------------------------------

    async def approval_mode(self, connector: str) -> str:
        connector_id = (await self._db(self.store.connectors.named, connector)).id
        return await self._db(self.store.pinning.mode, connector_id)

    async def set_approval_mode(self, connector: str, mode: str) -> str:
        connector_id = (await self._db(self.store.connectors.named, connector)).id
        return await self._db(self.store.pinning.set_mode, connector_id, mode)

    async def reviews(self, connector: str, agent: str | None = None) -> list[ToolReview]:
        rows = await self._db(self.store.pinning.reviews, *await self._tool_list(connector, agent))
        return [
            ToolReview(
                connector,
                agent,
                r["name"],
                r["state"],
                r["approved_at"],
                r["approved_by"],
                r["current"],
                r["approved"],
            )
            for r in rows
        ]

    async def approve(
        self, connector: str, tools: Sequence[str] | None = None, agent: str | None = None
    ) -> list[str]:
        """Approve the current definitions of `tools` (None: every tool not approved)."""
        connector_id, owner = await self._tool_list(connector, agent)
        return await self._db(self.store.pinning.approve, connector_id, owner, tools, self.operator)

    # --- names to ids ---------------------------------------------------------------------------

    async def _agent_id(self, agent: str) -> str:
        return (await self._db(self.store.agents.named, agent)).id

    async def _tool_list(self, connector: str, agent: str | None) -> tuple[str, str]:
        """(connector id, whose list): per_agent connectors keep one list per agent."""

        def resolve() -> tuple[str, str]:
            with self.store.session():
                conn = self.store.connectors.named(connector)
                if conn.credential_mode == "shared":
                    return conn.id, ""
                if agent is None:
                    raise ConfigurationError(
                        f"connector {conn.name!r} keeps one tool list per agent: name the agent",
                        hint="pass --agent NAME",
                    )
                return conn.id, self.store.agents.named(agent).id

        return await self._db(resolve)


def _policy(row: AgentPolicy) -> Policy:
    return Policy.from_rows(row.agent, row.rules, row.requests_per_minute, row.max_concurrent_calls)
