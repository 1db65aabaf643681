"""What every part of the services shares: the store (reached from worker threads), the network
policy's HTTP pool, the OAuth storage, the MCP era cache, the request timeout and the redirect URI.

Store calls are short and synchronous; `db` runs them in a worker thread so the event loop never
waits on another process holding the store. `db_later` is for writes a request must not wait for
(health bookkeeping, the auth trace of a refresh): a background task per event loop, whose failure is
logged, never raised; `settle` waits for this loop's before it ends. A write that is still waiting
to start is not queued a second time: ten concurrent calls rejected with one 401 record the
rejection once, instead of taking ten turns at the store ahead of the refresh that fixes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core import oauth
from core.action_log import record_action
from core.errors import (
    AuthError,
    ConfigurationError,
    DiscoveryError,
    InsufficientScope,
    RegistrationError,
    SwitchboardError,
)
from core.net import NetworkPolicy
from core.oauth import CredentialKey
from core.roles import Principal
from core.store.db import Store
from core.store.records import Connector

if TYPE_CHECKING:
    import httpx2

    from core.mcp.types import EraCache

log = logging.getLogger(__name__)

# How many servers `sync_many` talks to at once (here, not in sync.py: the facade names it as a
# default, and the sync engine loads only for commands that sync).
DEFAULT_CONCURRENCY = 64


class ServiceContext:
    def __init__(self, store: Store, policy: NetworkPolicy, *, timeout: float, redirect_uri: str) -> None:
        self.store = store
        self.policy = policy
        self.timeout = timeout
        self.redirect_uri = redirect_uri
        self.oauth_storage = store.oauth_storage()
        self._era_cache: EraCache | None = None
        self._era_cache_lock = threading.Lock()
        self._background: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[asyncio.Task[None]]] = (
            weakref.WeakKeyDictionary()
        )
        self._waiting_writes: set[tuple[Any, ...]] = set()  # background writes not started yet

    @property
    def era_cache(self) -> EraCache:
        """Which origins speak which MCP era, for every client built here. Made on first use: the
        MCP client's types load only for commands that talk to a server."""
        with self._era_cache_lock:
            if self._era_cache is None:
                from core.mcp.types import EraCache

                self._era_cache = EraCache()
            return self._era_cache

    async def db(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(function, *args, **kwargs)

    def db_later(self, function: Callable[..., Any], *args: Any) -> None:
        """A store write that the request in progress must not wait for (dropped when the same write,
        same function and arguments, is queued and has not started yet: it would change nothing)."""
        write_id: tuple[Any, ...] = (function, *args)
        try:
            if write_id in self._waiting_writes:
                return
        except TypeError:  # an argument that cannot be compared this way: always write
            write_id = (object(),)
        self._waiting_writes.add(write_id)

        def run() -> None:
            self._waiting_writes.discard(write_id)  # started: a later equal write is a new one
            function(*args)

        async def write() -> None:
            try:
                await self.db(run)
            except SwitchboardError as exc:
                log.warning("background store write failed: %s", exc)
            finally:
                self._waiting_writes.discard(write_id)  # also when it never started (cancelled)

        loop = asyncio.get_running_loop()
        running = self._background.setdefault(loop, set())
        task = loop.create_task(write())
        running.add(task)
        task.add_done_callback(running.discard)

    async def settle(self) -> None:
        """Let this event loop's background writes land (before the loop ends)."""
        await asyncio.gather(*self._background.pop(asyncio.get_running_loop(), ()))

    def record_action(self, principal: Principal, action: str, target: str, outcome: str) -> None:
        """An operator's action (or a refused one) for the action log, without waiting for it."""
        record_action(principal, action, target, outcome)

    async def connector(self, name: str) -> Connector:
        """The connector named `name` (the faces name connectors; the store takes ids)."""
        return await self.db(self.store.connectors.named, name)

    async def connector_by_id(self, connector_id: str) -> Connector:
        return await self.db(self.store.connectors.get, connector_id)

    async def record_failure(self, connector: Connector, exc: SwitchboardError) -> None:
        status = failure_status(connector, exc)
        if status is not None:
            await self.db(self.store.connectors.update, connector.id, status=status, last_error=str(exc))

    def http(self) -> httpx2.AsyncClient:
        from core.net import shared_http_client  # late: httpx2 loads only for commands that go online

        return shared_http_client(self.policy)

    def oauth_http(self, trace: oauth.AuthTrace | None = None) -> oauth.OAuthHttp:
        return oauth.OAuthHttp(self.http(), trace)

    async def save_trace(self, key: CredentialKey, trace: oauth.MemoryTrace, attempt: str) -> None:
        """The steps of one connection attempt, written in one store session."""

        def write() -> None:
            with self.store.session():  # one lock hold for all the steps
                for event in trace.events:
                    self.store.auth_trace.record(key, attempt, event)

        if trace.events:
            await self.db(write)


def failure_status(connector: Connector, exc: SwitchboardError) -> str | None:
    """The connector status a failure leaves behind, or None when it is not the connector's state."""
    if isinstance(exc, ConfigurationError):
        return None  # an operator's or a caller's mistake (a bad return path, a typo), not the server's
    if isinstance(exc, AuthError) and connector.credential_mode == "per_agent":
        return None  # one agent's credential problem is that credential's state, not the connector's
    if isinstance(exc, InsufficientScope):
        return None  # the credential works; one operation wants more scope
    if isinstance(exc, DiscoveryError | RegistrationError):
        return "error"  # the server's OAuth setup is at fault, not a missing or expired credential
    return "needs_auth" if isinstance(exc, AuthError) else "error"


def attempt_of(state: str) -> str:
    """The trace of one authorization spans two requests (start, callback), maybe two processes: name
    the attempt by a hash of its state so both halves land together without storing the state."""
    return hashlib.sha256(state.encode()).hexdigest()[:16] if state else new_attempt()


def new_attempt() -> str:
    return os.urandom(8).hex()


# A server's 403 insufficient_scope challenges to a credential are kept in its auth trace, all under
# one attempt of their own per credential, so the scopes view finds the last one with the trace's
# own lookup (`store.auth_trace.attempt(key, attempt)`). The detail names the scopes asked for
# after this prefix.
SCOPE_CHALLENGE_STEP = "insufficient_scope"
SCOPE_CHALLENGE_DETAIL = "the server asked for scope: "


def scope_challenges_attempt(key: CredentialKey) -> str:
    return "scope-" + hashlib.sha256(f"{key.connector_id}\0{key.agent_id}".encode()).hexdigest()[:16]
