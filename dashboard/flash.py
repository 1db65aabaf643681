"""One-time messages handed from the OAuth callback route to the page it redirects to.

Only a random key travels in the URL; the message itself stays in this process, so nothing an
authorization server sent is ever reflected through a query string, and a reload shows it no more.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

FLASH_PARAM = "flash"
_LIFETIME_SECONDS = 600.0
_MAX_PENDING = 1000


@dataclass(frozen=True)
class Flash:
    ok: bool
    message: str
    connector: str | None = None
    agent: str | None = None


_pending: dict[str, tuple[float, Flash]] = {}
_lock = threading.Lock()


def put(flash: Flash) -> str:
    """Keep `flash` for one `take`; returns its key."""
    key = secrets.token_urlsafe(16)
    now = time.monotonic()
    with _lock:
        _forget_expired(now)
        if len(_pending) >= _MAX_PENDING:
            _pending.pop(next(iter(_pending)))
        _pending[key] = (now + _LIFETIME_SECONDS, flash)
    return key


def take(key: str | None) -> Flash | None:
    """The message stored under `key`, once; None when unknown, already taken or expired."""
    if not key:
        return None
    with _lock:
        entry = _pending.pop(key, None)
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _forget_expired(now: float) -> None:
    for key in [k for k, (expires, _) in _pending.items() if expires < now]:
        del _pending[key]
