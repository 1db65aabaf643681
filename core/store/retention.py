"""Retention of the audit log and the auth trace (#16.6): both would otherwise grow forever (every
background refresh adds trace rows).

Each history keeps rows younger than an age and at most a number of rows, whichever removes more.
Defaults, overridable by environment variable (0 keeps that limit off):

| history | age | rows | variables |
| --- | --- | --- | --- |
| audit log | 90 days | 1,000,000 | `SWITCHBOARD_AUDIT_RETENTION_DAYS`, `SWITCHBOARD_AUDIT_RETENTION_ROWS` |
| auth trace | 30 days | 100,000 | `SWITCHBOARD_TRACE_RETENTION_DAYS`, `SWITCHBOARD_TRACE_RETENTION_ROWS` |

Pruning runs in the background: the first audit or trace write of a process, and then the first one
after each `interval` (an hour), starts a thread that prunes both in one transaction. No
request waits for it, and processes that never write never prune.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ConfigurationError, SwitchboardError

if TYPE_CHECKING:
    from core.store.db import Store

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    audit_days: float | None = 90
    audit_rows: int | None = 1_000_000
    trace_days: float | None = 30
    trace_rows: int | None = 100_000
    interval: float = 3600.0  # seconds between background prunes in one process

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionPolicy:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            audit_days=_limit(env, "SWITCHBOARD_AUDIT_RETENTION_DAYS", defaults.audit_days, float),
            audit_rows=_limit(env, "SWITCHBOARD_AUDIT_RETENTION_ROWS", defaults.audit_rows, int),
            trace_days=_limit(env, "SWITCHBOARD_TRACE_RETENTION_DAYS", defaults.trace_days, float),
            trace_rows=_limit(env, "SWITCHBOARD_TRACE_RETENTION_ROWS", defaults.trace_rows, int),
        )


class Retention:
    """Applies a `RetentionPolicy` to one store, now (`apply`) or in the background (`due`)."""

    def __init__(self, store: Store, policy: RetentionPolicy) -> None:
        self._store = store
        self.policy = policy
        self._next = 0.0  # monotonic time of the next background run
        self._mutex = threading.Lock()
        self._running: threading.Thread | None = None

    def apply(self, now: float | None = None) -> dict[str, int]:
        """Prune both histories now; returns how many rows each lost."""
        now = time.time() if now is None else now
        policy = self.policy
        with self._store.tx() as tx:
            return {
                "audit_log": self._store.audit.prune(
                    tx, older_than=_before(now, policy.audit_days), keep_rows=policy.audit_rows
                ),
                "auth_trace": self._store.auth_trace.prune(
                    tx, older_than=_before(now, policy.trace_days), keep_rows=policy.trace_rows
                ),
            }

    def due(self) -> None:
        """Called after each history write: start a background prune when one is due."""
        if time.monotonic() < self._next:
            return
        with self._mutex:
            if time.monotonic() < self._next or (self._running and self._running.is_alive()):
                return
            self._next = time.monotonic() + self.policy.interval
            # Not a daemon: interpreter exit would kill it inside the database driver and abort the
            # process; a prune takes milliseconds, so a CLI process waits that long to exit.
            self._running = threading.Thread(target=self._run, name="switchboard-retention")
            self._running.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until a background prune in progress is done (tests, orderly shutdown)."""
        running = self._running
        if running is not None:
            running.join(timeout)

    def _run(self) -> None:
        try:
            pruned = self.apply()
        except SwitchboardError as exc:  # a busy store: the next due run tries again
            log.warning("pruning the audit log and auth trace failed: %s", exc)
            return
        except Exception:  # a background job: log it, never let it kill the process
            log.exception("pruning the audit log and auth trace failed")
            return
        if any(pruned.values()):
            log.info("retention pruned %s", pruned)


def _before(now: float, days: float | None) -> float | None:
    return None if days is None else now - days * DAY


def _limit(env: Mapping[str, str], name: str, default: float | None, kind: type) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {raw!r}", hint="0 keeps everything") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative", hint="0 keeps everything")
    return value or None
