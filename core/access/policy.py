"""Per-agent gateway policy: allow/deny rules by connector, tool-name glob and tool annotation, and
the agent's limits.

Decision: a tool is denied when any deny rule matches it; otherwise, when the policy has allow
rules, it must match one of them (an allow-list); with no allow rules everything not denied is
allowed. Globs are `fnmatch` patterns on the upstream names (connector and tool, not the gateway's
`<connector>__<tool>`). An annotation rule matches a tool whose hint is true under MCP's defaults
(2025-11-25 `ToolAnnotations`): an un-annotated tool may be destructive and open-world, and
`destructiveHint` / `idempotentHint` mean nothing for a read-only tool — so `deny destructiveHint`
denies every tool that does not declare itself read-only or non-destructive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from core.errors import ConfigurationError

EFFECTS = ("allow", "deny")
ANNOTATIONS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
_DEFAULTS = {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True}


def annotation_hint(annotations: Mapping[str, Any] | None, name: str) -> bool:
    """Whether hint `name` holds for a tool with these annotations, under the spec's defaults."""
    annotations = annotations if isinstance(annotations, Mapping) else {}
    if name in ("destructiveHint", "idempotentHint") and annotations.get("readOnlyHint") is True:
        return False
    value = annotations.get(name)
    return value if isinstance(value, bool) else _DEFAULTS[name]


@dataclass(frozen=True)
class PolicyRule:
    effect: str  # allow | deny
    connector: str = "*"
    tool: str = "*"
    annotation: str | None = None

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise ConfigurationError(f"a rule's effect is allow or deny, not {self.effect!r}")
        if self.annotation is not None and self.annotation not in ANNOTATIONS:
            raise ConfigurationError(
                f"unknown annotation {self.annotation!r}", hint=f"use one of {', '.join(ANNOTATIONS)}"
            )
        if not self.connector or not self.tool:
            raise ConfigurationError("connector and tool patterns must not be empty (use '*')")

    def matches(self, connector: str, tool: str, annotations: Mapping[str, Any] | None) -> bool:
        return (
            fnmatchcase(connector, self.connector)
            and fnmatchcase(tool, self.tool)
            and (self.annotation is None or annotation_hint(annotations, self.annotation))
        )

    def describe(self) -> str:
        where = f"connector {self.connector}, tool {self.tool}"
        return f"{self.effect} {where}" + (f", {self.annotation}" if self.annotation else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "effect": self.effect,
            "connector": self.connector,
            "tool": self.tool,
            "annotation": self.annotation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyRule:
        return cls(
            str(data["effect"]),
            str(data.get("connector") or "*"),
            str(data.get("tool") or "*"),
            data.get("annotation") or None,
        )


@dataclass(frozen=True)
class Policy:
    """One agent's rules and limits (None: the gateway's default limit)."""

    agent: str
    rules: tuple[PolicyRule, ...] = ()
    requests_per_minute: int | None = None
    max_concurrent_calls: int | None = None

    def denial(self, connector: str, tool: str, annotations: Mapping[str, Any] | None) -> str | None:
        """Why the policy denies this tool, or None when it is allowed."""
        for rule in self.rules:
            if rule.effect == "deny" and rule.matches(connector, tool, annotations):
                return f"denied by the rule '{rule.describe()}'"
        allows = [rule for rule in self.rules if rule.effect == "allow"]
        if allows and not any(rule.matches(connector, tool, annotations) for rule in allows):
            return "not allowed by any allow rule"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "rules": [rule.as_dict() for rule in self.rules],
            "requests_per_minute": self.requests_per_minute,
            "max_concurrent_calls": self.max_concurrent_calls,
        }

    @classmethod
    def from_rows(
        cls, agent: str, rules: Iterable[Mapping[str, Any]], rpm: int | None, concurrent: int | None
    ) -> Policy:
        return cls(agent, tuple(PolicyRule.from_dict(r) for r in rules), rpm, concurrent)
