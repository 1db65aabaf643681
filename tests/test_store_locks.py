"""The DuckDB store's lock (`core.store.locks`): fair between processes and between threads, and a
burst of sessions in one process pays one open of the database.

The first test failed before the turnstile: a process that takes the lock again right after letting
it go (a refresher in a loop) kept it from a process that polls for it (a key rotation) far longer
than one session, under load until its 30 s ran out (test_store_concurrency's C-11 rotation test).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from core.errors import StoreBusy
from core.store import Keyring, Store
from core.store.locks import ExclusiveLock, lock_for

SPAWN = multiprocessing.get_context("spawn")
HOGGING = 20.0  # at most this long the greedy side keeps taking the lock back
TURN = 2.0  # a waiter gets its turn within this (one hold of 20 ms and a poll, on an idle machine)


def _busy() -> StoreBusy:
    return StoreBusy("the lock stayed busy")


def _hog(path: str, started, stop) -> int:
    """Take the lock, hold it a moment, let it go and take it again at once, until told to stop."""
    lock = lock_for(Path(path))
    rounds = 0
    deadline = time.monotonic() + HOGGING
    while not stop.is_set() and time.monotonic() < deadline:
        with lock.hold(60, _busy):
            started.set()
            time.sleep(0.02)  # a short session
        rounds += 1
    return rounds


def test_a_process_that_keeps_taking_the_lock_cannot_starve_another(tmp_path):
    path = tmp_path / "store.lock"
    started, stop = SPAWN.Event(), SPAWN.Event()
    hog = SPAWN.Process(target=_hog, args=(str(path), started, stop))
    hog.start()
    try:
        assert started.wait(60)
        mine = ExclusiveLock(path)  # another process's view of the same file
        waits = []
        for _ in range(5):
            began = time.monotonic()
            with mine.hold(TURN, _busy):
                waits.append(time.monotonic() - began)
        assert max(waits) < TURN
    finally:
        stop.set()
        hog.join(30)


def test_threads_are_served_in_turn(tmp_path):
    lock = ExclusiveLock(tmp_path / "store.lock")
    stop = threading.Event()
    hold_started = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            with lock.hold(60, _busy):
                hold_started.set()
                time.sleep(0.001)

    worker = threading.Thread(target=hog)
    worker.start()
    try:
        assert hold_started.wait(10)
        for _ in range(20):
            with lock.hold(2.0, _busy):  # never behind more than the one session in progress
                pass
    finally:
        stop.set()
        worker.join(10)


def test_a_burst_of_sessions_in_one_process_opens_the_database_once(tmp_path):
    store = Store(tmp_path / "s.duckdb", keyring=Keyring.generate())
    opened = []
    original = store.engine._open

    def counting_open(*args, **kwargs):
        opened.append(threading.get_ident())
        return original(*args, **kwargs)

    store.engine._open = counting_open
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with store.session():
            holding.set()
            release.wait(10)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert holding.wait(10)
    threads += [threading.Thread(target=store.agents.list) for _ in range(8)]  # they queue behind it
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(store.engine.session_lock._queue) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(opened) == 1  # handed from session to session, closed after the last one
    store.agents.create("after")  # and the file was released: a fresh session opens it again
    assert len(opened) == 2


def test_a_waiter_that_gives_up_leaves_no_lock_behind(tmp_path):
    lock = ExclusiveLock(tmp_path / "store.lock")
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock.hold(10, _busy):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(10)
    with pytest.raises(StoreBusy), lock.hold(0.05, _busy):
        pass
    release.set()
    thread.join(10)
    other = ExclusiveLock(tmp_path / "store.lock")  # as another process would: the flock is free
    with other.hold(1.0, _busy):
        pass
