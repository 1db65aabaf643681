"""Open pages whose sign-in has ended leave: every page session registers here, and one task per
process checks them all every `SESSION_CHECK_SECONDS` with one read of the store (plus, in basic
mode, one per distinct account) — not a store read per open tab.

A session ends when its cookie expires, when it was signed out (on any replica: the store's
`ended_sessions`), or in basic mode when its account was removed or its role or password changed.
Its `on_end` then runs in the session (a next-tick callback holds the document's lock): the page's
services refuse from then on and the browser is sent to sign in (`dashboard/app.py`).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from core.errors import StoreError
from dashboard.signin import FrontDoor, Session

log = logging.getLogger(__name__)

SESSION_CHECK_SECONDS = 5.0


class SessionWatch:
    def __init__(self, door: FrontDoor, period: float = SESSION_CHECK_SECONDS) -> None:
        self._door = door
        self._period = period
        self._watched: weakref.WeakKeyDictionary[Any, tuple[str | None, Callable[[], None]]] = (
            weakref.WeakKeyDictionary()
        )
        self._task: asyncio.Task[None] | None = None

    def watch(self, document: Any, cookie: str | None, on_end: Callable[[], None]) -> None:
        """Check the sign-in behind `cookie` for the page session of `document` until it ends."""
        self._watched[document] = (cookie, on_end)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(self._period)
            try:
                await self.check()
            except StoreError as exc:  # e.g. the store busy for long: ask again at the next round
                log.warning("could not check the dashboard's sessions: %s", exc)

    async def check(self) -> None:
        """End every watched session that is no longer live."""
        watched = [
            (document, self._door.session_of_cookie(cookie), on_end)  # no session once expired
            for document, (cookie, on_end) in list(self._watched.items())
            if not _destroyed(document)
        ]
        live = await self._live({session for _, session, _ in watched if session is not None})
        for document, session, on_end in watched:
            if session not in live:
                del self._watched[document]
                document.add_next_tick_callback(on_end)

    async def _live(self, sessions: set[Session]) -> set[Session]:
        if not sessions:
            return set()
        ended = await asyncio.to_thread(self._door.ended_among, [s.id for s in sessions])
        live = {s for s in sessions if s.id not in ended}
        if self._door.passwords is not None:  # basic: is each account still as its sessions knew it?
            accounts = {(s.principal, s.account) for s in live}
            still = {a for a in accounts if await self._door.passwords.still_signed_in(*a)}
            live = {s for s in live if (s.principal, s.account) in still}
        return live


def _destroyed(document: Any) -> bool:
    context = getattr(document, "session_context", None)
    return context is None or bool(getattr(context, "destroyed", False))


_watch: SessionWatch | None = None


def watch_session(on_end: Callable[[], None]) -> None:
    """Watch the current Panel session's sign-in (see the module docstring); not in `none` mode."""
    import panel as pn

    from dashboard.signin import SESSION_COOKIE, front_door

    global _watch
    door = front_door()
    if door.mode == "none":
        return
    if _watch is None:
        _watch = SessionWatch(door)
    _watch.watch(pn.state.curdoc, pn.state.cookies.get(SESSION_COOKIE), on_end)
