"""The auth trace: one record per discovery, registration, authorization or token step.

The OAuth code reports every outbound step to an optional `AuthTrace`; the store persists the records
so the dashboard can show an operator exactly where an authorization went wrong. Records carry URLs
without query or fragment, a status, a duration and a short detail built from error messages, which by
the rules of `core.errors` never contain a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["AuthTrace", "MemoryTrace", "TraceEvent"]


@dataclass(frozen=True)
class TraceEvent:
    step: str  # e.g. "prm", "as_metadata", "register", "authorize", "token", "refresh", "revoke"
    method: str
    url: str  # scheme://host/path only: never a query (state, code) or userinfo
    status: int | None  # None when no HTTP answer arrived (refused by policy, network error)
    duration_ms: float
    detail: str = ""


class AuthTrace(Protocol):
    def record(self, event: TraceEvent) -> None: ...


@dataclass
class MemoryTrace:
    """Keeps events in a list (tests, the conformance entry point)."""

    events: list[TraceEvent] = field(default_factory=list)

    def record(self, event: TraceEvent) -> None:
        self.events.append(event)

    def steps(self) -> list[str]:
        return [e.step for e in self.events]
