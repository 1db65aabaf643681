"""One-time (flash) messages handed from the OAuth callback to the page it redirects to.

Only a random key travels in the URL; the message stays in the store, found by the key's SHA-256,
so the page may be served by another dashboard replica than the callback, and a reload shows it no
more (`take` deletes and returns in one statement). Messages expire after ten minutes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from core.store.repositories.base import Repository

MESSAGE_TTL_SECONDS = 600.0


class MessageRepository(Repository):
    def put(self, message: dict[str, Any], *, ttl: float = MESSAGE_TTL_SECONDS) -> str:
        """Keep `message` (JSON-able) for one `take`; returns its key."""
        key = secrets.token_urlsafe(16)
        now = time.time()
        with self._store.tx() as tx:
            tx.execute("DELETE FROM flash_messages WHERE expires_at < ?", [now])
            tx.execute(
                "INSERT INTO flash_messages VALUES (?, ?, ?)",
                [_hash(key), json.dumps(message, sort_keys=True), now + ttl],
            )
        return key

    def take(self, key: str | None) -> dict[str, Any] | None:
        """The message stored under `key`, once; None when unknown, already taken or expired."""
        if not key:
            return None
        with self._store.tx() as tx:
            row = tx.one(
                "DELETE FROM flash_messages WHERE key_hash = ? RETURNING message, expires_at", [_hash(key)]
            )
        if row is None or row["expires_at"] < time.time():
            return None
        return json.loads(row["message"])


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
