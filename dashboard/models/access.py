"""One agent's gateway access: its tokens (created — shown once —, listed, revoked) and its policy
(allow/deny rules, limits), through `core.access.AgentAccess` like the CLI's `agent token` and
`policy` commands."""

from __future__ import annotations

import pandas as pd
import param

from core.access import IssuedToken, Policy, PolicyRule
from core.errors import ConfigurationError
from core.store import AgentToken
from dashboard.models.base import ServiceModel
from dashboard.models.formatting import NEVER, format_time


class AgentGateway(ServiceModel):
    agent = param.String(default="", doc="The agent's name.")
    tokens = param.List(default=[], item_type=AgentToken, doc="Its tokens, oldest first (never the secrets).")
    policy = param.ClassSelector(class_=Policy, default=None, allow_None=True)

    async def refresh(self) -> None:
        async def read() -> tuple[list[AgentToken], Policy]:
            access = self.services.access()
            return await access.list_tokens(self.agent), await access.policy(self.agent)

        await self._load("access", read(), lambda found: self.param.update(tokens=found[0], policy=found[1]))

    # --- tokens ---------------------------------------------------------------------------------

    async def create_token(self, label: str = "", expires_in_days: float | None = None) -> IssuedToken:
        """A new token; its text is only in the result (show it once, keep it nowhere)."""
        issued = await self.services.access().create_token(
            self.agent, expires_in_days=expires_in_days or None, label=label
        )
        await self.refresh()
        return issued

    async def revoke_token(self, token_id: str) -> AgentToken:
        token = await self.services.access().revoke_token(self.agent, token_id)
        await self.refresh()
        return token

    @param.depends("tokens")
    def token_frame(self) -> pd.DataFrame:
        rows = [
            {
                "id": t.id,
                "label": t.label,
                "status": t.status(),
                "created": format_time(t.created_at),
                "expires": format_time(t.expires_at) if t.expires_at else "never",
                "last used": format_time(t.last_used_at),
            }
            for t in self.tokens
        ]
        return pd.DataFrame(rows, columns=["id", "label", "status", "created", "expires", "last used"])

    # --- policy ---------------------------------------------------------------------------------

    async def add_rule(
        self, effect: str, connector: str = "*", tool: str = "*", annotation: str = ""
    ) -> Policy:
        rule = PolicyRule(effect, connector.strip() or "*", tool.strip() or "*", annotation or None)
        self.policy = await self.services.access().add_rule(self.agent, rule)
        return self.policy

    async def remove_rule(self, number: int) -> Policy:
        """Remove rule `number` (1-based, as the table and `switchboard policy show` number them)."""
        self.policy = await self.services.access().remove_rule(self.agent, number)
        return self.policy

    async def set_limits(self, requests_per_minute: int | None, max_concurrent_calls: int | None) -> Policy:
        """Set both limits; None or 0 means the gateway's default."""
        for value in (requests_per_minute, max_concurrent_calls):
            if value is not None and value < 0:
                raise ConfigurationError(
                    "Limits are positive numbers; leave one empty for the gateway's default."
                )
        self.policy = await self.services.access().set_limits(
            self.agent,
            requests_per_minute=requests_per_minute or 0,
            max_concurrent_calls=max_concurrent_calls or 0,
        )
        return self.policy

    @param.depends("policy")
    def rule_frame(self) -> pd.DataFrame:
        rules = self.policy.rules if self.policy else ()
        rows = [
            {
                "n": number,
                "effect": rule.effect,
                "connector": rule.connector,
                "tool": rule.tool,
                "annotation": rule.annotation or NEVER,
            }
            for number, rule in enumerate(rules, 1)
        ]
        return pd.DataFrame(rows, columns=["n", "effect", "connector", "tool", "annotation"])

    @param.depends("policy")
    def limits(self) -> dict[str, str]:
        policy = self.policy
        default = "the gateway's default"
        return {
            "requests per minute": str(policy.requests_per_minute)
            if policy and policy.requests_per_minute
            else default,
            "concurrent calls": str(policy.max_concurrent_calls)
            if policy and policy.max_concurrent_calls
            else default,
        }
