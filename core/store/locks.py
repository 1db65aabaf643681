"""Locks that hold across the threads of a process and across processes, and take turns fairly.

`ExclusiveLock` is re-entrant within a thread and exclusive against other threads and, with a lock
file, other processes (`fcntl.flock` on the file). Locks are shared per lock-file path within a
process (`lock_for`), so two `Store` objects on one file exclude each other here instead of
deadlocking on their own flocks.

Turns are fair, so a busy writer cannot starve anyone:

- threads of one process are served first come, first served (a ticket queue);
- between processes a second file, `<lock>.next`, is a turnstile: a process that needs the lock
  first takes the turnstile, then waits for the lock, then lets the turnstile go. A process that
  finishes with the lock while the turnstile is taken hands the lock over: it gives it up, and it
  cannot take it again before the waiting process had its turn (it would need the turnstile).

A process that still has threads waiting when its holder finishes, and no other process waiting,
keeps the flock for them (a handoff): the next thread skips re-locking the file, and the store keeps
its DuckDB connection open for it (`park`), so a burst of short sessions in one process pays one
open of the database instead of one per session.

Waiting polls the flock with jittered exponential backoff rather than blocking in the kernel, so a
wait can give up at a deadline. Lock files are never deleted: deleting a file someone else is about
to flock lets two processes each hold "the" lock on different inodes. A process that dies releases
its flocks with its descriptors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.config import PRIVATE_FILE_MODE

_FIRST_WAIT = 0.001
_MAX_WAIT = 0.025


def backoff(deadline: float) -> Iterator[None]:
    """Yield until `deadline` (time.monotonic), sleeping a little longer, with jitter, each time."""
    wait = _FIRST_WAIT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        yield
        time.sleep(min(remaining, wait * random.uniform(0.5, 1.5)))
        wait = min(wait * 2, _MAX_WAIT)


class ExclusiveLock:
    """Re-entrant within a thread; exclusive and fair against other threads and, with a path, other
    processes (see the module docstring)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._turnstile = path.with_name(path.name + ".next") if path is not None else None
        self._state = threading.Condition()  # guards everything below
        self._owner: int | None = None
        self._depth = 0
        self._queue: deque[object] = deque()  # tickets of the threads waiting, oldest first
        self._fd: int | None = None  # the flock this process holds (kept across a handoff)
        self._parked: tuple[Any, Callable[[Any], None]] | None = None

    @property
    def held_by_me(self) -> bool:
        with self._state:
            return self._owner == threading.get_ident()

    @contextlib.contextmanager
    def hold(self, timeout: float, on_timeout: Callable[[], Exception]) -> Iterator[None]:
        """Hold the lock; raise `on_timeout()` when it is not ours within `timeout` seconds."""
        self._enter(time.monotonic() + timeout, on_timeout)
        try:
            yield
        finally:
            self._exit()

    def park(self, resource: Any, close: Callable[[Any], None]) -> None:
        """Leave `resource` (an open connection) for the next holder in this process; `close(resource)`
        runs if the lock is released instead. Call while holding the lock."""
        with self._state:
            self._discard_parked()
            self._parked = (resource, close)

    def unpark(self) -> Any | None:
        """What the previous holder in this process parked, if the lock was handed over; else None."""
        with self._state:
            parked, self._parked = self._parked, None
        return parked[0] if parked else None

    def discard_parked(self) -> None:
        """Close what is parked (e.g. before opening the file otherwise). Call while holding the lock."""
        with self._state:
            self._discard_parked()

    # --- taking turns -----------------------------------------------------------------------------

    def _enter(self, deadline: float, on_timeout: Callable[[], Exception]) -> None:
        me = threading.get_ident()
        with self._state:
            if self._owner == me:
                self._depth += 1
                return
            ticket = object()
            self._queue.append(ticket)
            try:
                while self._owner is not None or self._queue[0] is not ticket:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise on_timeout()
                    self._state.wait(remaining)
            except BaseException:
                self._queue.remove(ticket)
                if self._owner is None and not self._queue:
                    self._release_file()  # kept for a handoff that will not happen now
                self._state.notify_all()
                raise
            self._queue.popleft()
            self._owner, self._depth = me, 1
            needs_file = self._path is not None and self._fd is None
        if needs_file:
            try:
                fd = self._lock_file(deadline, on_timeout)  # other threads may queue meanwhile
            except BaseException:
                with self._state:
                    self._owner, self._depth = None, 0
                    self._state.notify_all()
                raise
            with self._state:
                self._fd = fd

    def _exit(self) -> None:
        with self._state:
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            if not self._queue or self._another_process_waits():
                self._release_file()
            self._state.notify_all()

    def _lock_file(self, deadline: float, on_timeout: Callable[[], Exception]) -> int:
        assert self._path is not None and self._turnstile is not None
        turn = os.open(self._turnstile, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            if not _flock(turn, deadline):
                raise on_timeout()
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
            if not _flock(fd, deadline):
                os.close(fd)
                raise on_timeout()
            return fd
        finally:
            os.close(turn)  # lets the turnstile go: the next process may line up

    def _another_process_waits(self) -> bool:
        """Whether another process holds the turnstile, i.e. waits for this lock."""
        if self._turnstile is None or self._fd is None:
            return False
        turn = os.open(self._turnstile, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(turn)  # also releases the probe's own flock
        return False

    def _release_file(self) -> None:
        self._discard_parked()
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def _discard_parked(self) -> None:
        if self._parked is not None:
            resource, close = self._parked
            self._parked = None
            close(resource)


def _flock(fd: int, deadline: float) -> bool:
    for _ in backoff(deadline):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        return True
    return False


_registry: dict[str, ExclusiveLock] = {}
_registry_mutex = threading.Lock()


def lock_for(path: Path) -> ExclusiveLock:
    """The process's one `ExclusiveLock` for this lock file."""
    key = os.path.realpath(path)
    with _registry_mutex:
        lock = _registry.get(key)
        if lock is None:
            lock = _registry[key] = ExclusiveLock(Path(key))
        return lock


class ThreadMarker:
    """A session "lock" that excludes nobody: for an engine whose sessions may run side by side
    (PostgreSQL locks rows instead). It still tells whether this thread is inside a session."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def held_by_me(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    @contextlib.contextmanager
    def hold(self, timeout: float, on_timeout: Callable[[], Exception]) -> Iterator[None]:
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
