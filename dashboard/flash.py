"""One-time messages handed from the OAuth callback route to the page it redirects to.

Only a random key travels in the URL; the message itself stays in the store (its `messages`
repository keeps it under the key's SHA-256 and hands it out once), so nothing an authorization
server sent is ever reflected through a query string, a reload shows it no more, and the page may be
served by another dashboard replica than the one the callback reached. Store calls run in a worker
thread: the event loop never waits for the store.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

import param

from core.store import Store

FLASH_PARAM = "flash"


@dataclass(frozen=True)
class Flash:
    ok: bool
    message: str
    connector: str | None = None
    agent: str | None = None


async def put(store: Store, flash: Flash) -> str:
    """Keep `flash` for one `take` (for ten minutes); returns its key."""
    return await asyncio.to_thread(store.messages.put, asdict(flash))


async def take(store: Store, key: str | None) -> Flash | None:
    """The message stored under `key`, once; None when unknown, already taken or expired."""
    if not key:
        return None
    found = await asyncio.to_thread(store.messages.take, key)
    return Flash(**found) if found is not None else None


class Arrival(param.Parameterized):
    """The flash message a page arrived with: None until it is read (after the page loads) and when
    there is none. Views that act on it watch `flash`."""

    flash = param.ClassSelector(class_=Flash, default=None, allow_None=True)

    async def load(self, store: Store, key: str | None) -> None:
        self.flash = await take(store, key)
