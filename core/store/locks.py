"""Locks that hold across the threads of a process and across processes.

`ExclusiveLock` pairs a thread lock with `fcntl.flock` on a lock file. The thread lock comes first
because flock belongs to an open file description: two threads sharing one descriptor would both
"hold" it. Locks are shared per lock-file path within a process (`lock_for`), so two `Store` objects
on one file exclude each other by the thread lock instead of deadlocking on their own flocks.

Waiting polls with jittered exponential backoff rather than blocking in the kernel, so a wait can
give up at a deadline. Lock files are never deleted: deleting a file someone else is about to
flock lets two processes each hold "the" lock on different inodes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
    """Re-entrant within a thread; exclusive against other threads and, with a path, other processes."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0  # guarded by _thread_lock
        self._fd: int | None = None

    @property
    def held_by_me(self) -> bool:
        # RLock._is_owned is private; track ownership ourselves via a non-blocking probe instead.
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            return self._depth > 0
        finally:
            self._thread_lock.release()

    @contextlib.contextmanager
    def hold(self, timeout: float, on_timeout: Callable[[], Exception]) -> Iterator[None]:
        """Hold the lock; raise `on_timeout()` when it is not ours within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=max(timeout, 0)):
            raise on_timeout()
        try:
            if self._depth == 0 and self._path is not None:
                self._lock_file(deadline, on_timeout)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    os.close(self._fd)  # closing the descriptor releases the flock
                    self._fd = None
        finally:
            self._thread_lock.release()

    def _lock_file(self, deadline: float, on_timeout: Callable[[], Exception]) -> None:
        assert self._path is not None
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        for _ in backoff(deadline):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            self._fd = fd
            return
        os.close(fd)
        raise on_timeout()


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
