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
        now = time.monotonic()
        with self._lock:
            times = self._seen.setdefault(client, deque())
            while times and times[0] <= now - self.seconds:
                times.popleft()
            if len(times) >= self.attempts:
                return False
            times.append(now)
            if len(self._seen) > self._max_clients:  # bounded memory: forget the longest-known client
                self._seen.pop(next(iter(self._seen)))
            return True
