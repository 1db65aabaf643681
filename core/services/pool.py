"""The MCP client pool: one `McpClient` per event loop and (credential, url, credential stamp).

Repeated calls and syncs with one credential reuse one client, so its MCP session (and its HTTP
connections) outlive a single request. Per event loop, because a client belongs to the loop it was
made on; weakly keyed, so a finished loop's clients go with it.

A client leaves the pool when its credential changes (a new authorization, a new key, another
process's change: the store's credential stamp differs) or its connector or agent is removed. It is
*retired*, not closed at once: requests still in flight on it (counted by `using`) finish with it —
reloading the new tokens — and it is closed when the last one is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.oauth import CredentialKey

if TYPE_CHECKING:
    from core.mcp.client import McpClient  # loaded by the services' first client (see credentials.py)

# (credential, server url, credential stamp): the stamp changes whenever the stored credential does.
Slot = tuple[CredentialKey, str, "tuple | None"]


@dataclass
class _LoopClients:
    clients: dict[Slot, McpClient] = field(default_factory=dict)
    locks: dict[Slot, asyncio.Lock] = field(default_factory=dict)
    busy: dict[McpClient, int] = field(default_factory=dict)  # requests in flight per client
    retiring: set[McpClient] = field(default_factory=set)  # out of the pool, closed when idle


class ClientPool:
    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"ClientPool({[here.clients for here in self._loops.values()]!r})"

    def slots(self) -> set[Slot]:
        """The slots this event loop already has a client for."""
        return set(self._here().clients)

    async def client(self, slot: Slot, build: Callable[[], Awaitable[McpClient]]) -> McpClient:
        """The pooled client of `slot`, built by `build` when there is none. A client of the same
        credential and url under an older stamp (the credential changed since) is retired."""
        here = self._here()
        client = here.clients.get(slot)
        if client is None:
            # Concurrent first calls must share one client (one initialize, one session: C-10);
            # building reads the store, so without the lock each caller made its own.
            async with here.locks.setdefault(slot, asyncio.Lock()):
                client = here.clients.get(slot)
                if client is None:
                    for stale in [s for s in here.clients if s[:2] == slot[:2]]:
                        await self._retire(here, here.clients.pop(stale))
                    client = here.clients[slot] = await build()
        return client

    @contextlib.asynccontextmanager
    async def using(self, client: McpClient) -> AsyncIterator[McpClient]:
        """Count a request in flight on `client`, so retiring it waits for the request to finish."""
        here = self._here()
        here.busy[client] = here.busy.get(client, 0) + 1
        try:
            yield client
        finally:
            here.busy[client] -= 1
            if not here.busy[client]:
                del here.busy[client]
                if client in here.retiring:
                    here.retiring.discard(client)
                    await client.close()

    async def forget(self, credentials: Callable[[CredentialKey], bool]) -> None:
        """Retire the clients of every credential for which `credentials(key)` is true."""
        here = self._here()
        for slot in [s for s in here.clients if credentials(s[0])]:
            await self._retire(here, here.clients.pop(slot))

    async def aclose(self) -> None:
        """Close this event loop's clients, busy or not (the loop is ending)."""
        here = self._loops.pop(asyncio.get_running_loop(), None)
        if here is not None:
            for client in [*here.clients.values(), *here.retiring]:
                await client.close()

    def _here(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        if loop not in self._loops:
            self._loops[loop] = _LoopClients()
        return self._loops[loop]

    @staticmethod
    async def _retire(here: _LoopClients, client: McpClient) -> None:
        """Stop handing out `client` and close it once its requests in flight are done (a new
        authorization must not fail the calls already running; they reload the new tokens)."""
        if here.busy.get(client):
            here.retiring.add(client)
        else:
            await client.close()
