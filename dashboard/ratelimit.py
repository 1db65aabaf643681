"""A per-client budget of attempts over a sliding window, for routes a stranger can hit without
signing in: the sign-in routes (guessing tokens or passwords) and the OAuth callback (each bogus
callback used to cost a store session)."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimit:
    def __init__(self, attempts: int, seconds: float, *, max_clients: int = 10_000) -> None:
        self.attempts = attempts
        self.seconds = seconds
        self._max_clients = max_clients
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Count one attempt of `client`; False when it is over budget (the attempt is not counted)."""
        with self._lock:
            if self._spent(client):
                return False
            self._count(client)
            return True

    def exhausted(self, client: str) -> bool:
        """Whether `client` has spent its budget, counting nothing (for routes that count failures only)."""
        with self._lock:
            return self._spent(client)

    def count(self, client: str) -> None:
        """Count one attempt of `client` (a failed sign-in)."""
        with self._lock:
            self._count(client)

    def _spent(self, client: str) -> bool:
        times = self._seen.get(client)
        if times is None:
            return False
        now = time.monotonic()
        while times and times[0] <= now - self.seconds:
            times.popleft()
        return len(times) >= self.attempts

    def _count(self, client: str) -> None:
        self._seen.setdefault(client, deque()).append(time.monotonic())
        if len(self._seen) > self._max_clients:  # bounded memory: forget the longest-known client
            self._seen.pop(next(iter(self._seen)))
