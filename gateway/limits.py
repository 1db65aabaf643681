"""Per-agent limits: requests per minute (a token bucket) and concurrent tool calls.

Several gateway processes may serve one store, each with its own counters; none may let an agent
exceed its limit in total, so each enforces its share — the limit divided by the number of live
gateway processes (heartbeats in the store), at least 1. With an even spread of requests the agent
gets its whole limit; with an uneven one, less, never more.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Limiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._calls: dict[str, int] = {}

    def admit(self, agent_id: str, per_minute: int, instances: int, now: float | None = None) -> float | None:
        """Take one request from the agent's bucket: None when admitted, else the seconds after
        which one will be available (for `Retry-After`)."""
        now = time.monotonic() if now is None else now
        share = max(1.0, per_minute / max(1, instances))
        rate = share / 60.0
        bucket = self._buckets.get(agent_id)
        if bucket is None:
            bucket = self._buckets[agent_id] = _Bucket(share, now)
        bucket.tokens = min(share, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / rate

    def start_call(self, agent_id: str, max_concurrent: int, instances: int) -> bool:
        """Count a call in flight; False (nothing counted) when the agent is at its share."""
        share = max(1, max_concurrent // max(1, instances))
        running = self._calls.get(agent_id, 0)
        if running >= share:
            return False
        self._calls[agent_id] = running + 1
        return True

    def end_call(self, agent_id: str) -> None:
        running = self._calls.get(agent_id, 0) - 1
        if running > 0:
            self._calls[agent_id] = running
        else:
            self._calls.pop(agent_id, None)


def retry_after(seconds: float) -> str:
    """`Retry-After` in whole seconds, at least 1 (RFC 9110 §10.2.3)."""
    return str(max(1, math.ceil(seconds)))
