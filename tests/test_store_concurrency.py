"""Several processes and threads on one store file: nothing fails, nothing is lost (C-03, C-09, C-11)."""

import multiprocessing
import threading
import time

import pytest

from core.errors import ConflictError
from core.oauth.storage import CredentialKey, TokenSet
from core.store import Keyring, Store
from core.store.crypto import key_id_of
from core.store.schema import LATEST_VERSION
from tests.fixtures.postgres import raw_execute

# spawn, not fork: a forked child would inherit the parent's thread locks in whatever state they were.
SPAWN = multiprocessing.get_context("spawn")


def _open(path, key_file, **options):
    return Store(path, keyring=Keyring.from_file(key_file), **options)


def _run(target, *argument_lists, timeout=240):
    results = SPAWN.Queue()
    processes = [SPAWN.Process(target=_report, args=(results, target, args)) for args in argument_lists]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=timeout) for _ in processes]
    for p in processes:
        p.join(timeout)
    failures = [o for o in outcomes if o[0] == "error"]
    assert not failures, failures
    assert all(p.exitcode == 0 for p in processes)
    return [o[1] for o in outcomes]


def _report(results, target, args):
    try:
        results.put(("ok", target(*args)))
    except Exception as exc:  # noqa: BLE001  (any failure is reported to the parent, which fails the test)
        results.put(("error", f"{type(exc).__name__}: {exc}"))


# --- process bodies -----------------------------------------------------------------------------------


def _writer_reader(path, key_file, name, rounds):
    store = _open(path, key_file)
    conn = store.connectors.named("shared")
    for i in range(rounds):
        agent = store.agents.create(f"{name}-{i}")
        store.credentials.save_secret(CredentialKey(conn.id, agent.id), f"secret-{name}-{i}")
        assert (
            store.credentials.load_secret(CredentialKey(conn.id, agent.id)).reveal() == f"secret-{name}-{i}"
        )
        store.audit.record(connector_id=conn.id, agent_id=agent.id, tool="t", status="ok")
        store.agents.list()
    return name


def _cli_like(path, key_file, index):
    """What one `switchboard` CLI invocation does: open (migrating if first), a few operations, exit."""
    started = time.perf_counter()
    store = _open(path, key_file)
    conn = store.connectors.create(f"conn-{index}", f"https://s{index}.example/mcp", "bearer")
    store.credentials.save_secret(CredentialKey(conn.id), f"token-{index}")
    store.tools.record_sync(
        conn.id, "", [{"name": f"tool-{index}-{j}", "description": "d"} for j in range(50)]
    )
    page = store.tools.page(connector_id=conn.id, limit=10)
    assert page.total == 50
    assert store.credentials.load_secret(CredentialKey(conn.id)).reveal() == f"token-{index}"
    return time.perf_counter() - started


def _cas_once(path, key_file, barrier, name):
    storage = _open(path, key_file).oauth_storage()
    key = CredentialKey("c", "")
    seen = storage.load_tokens(key)
    barrier.wait()
    try:
        storage.save_tokens(
            key, TokenSet(f"at-{name}", refresh_token=f"rt-{name}"), expected_version=seen.version
        )
        return "won"
    except ConflictError:
        return "lost"


def _refresh_through_ours(path, key_file, at_lock):
    """One process refreshing the credential through core.oauth.tokens.refresh_tokens (our
    read-refresh-write: asyncio single flight, the store's cross-process refresh lock, the re-check
    under it, the CAS on commit) against the sample authorization server. Every process waits at
    `at_lock` just before the refresh lock, so all of them have read the expired tokens before any
    can refresh: the re-check under the lock is what keeps the others from refreshing again."""
    import asyncio
    import contextlib
    import hashlib

    from core.net import NetworkPolicy, create_http_client
    from core.oauth import OAuthHttp, refresh_tokens, tokens

    real_lock = tokens.storage_lock

    @contextlib.asynccontextmanager
    async def lock_after_all_read(storage, key):
        await asyncio.to_thread(at_lock.wait, 60)
        async with real_lock(storage, key):
            yield

    tokens.storage_lock = lock_after_all_read
    storage = _open(path, key_file).oauth_storage()
    key = CredentialKey("c", "")

    async def refresh():
        stale = storage.load_tokens(key)
        registration = storage.client_by_id(stale.issuer, stale.client_id)
        async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
            return await refresh_tokens(storage, key, OAuthHttp(client), registration, stale=stale)

    fresh = asyncio.run(refresh())
    return hashlib.sha256(fresh.access_token.encode()).hexdigest()[:16]  # not the token itself


def _rotate(path, key_file):
    return _open(path, key_file).keys.rotate(batch_size=1).reencrypted


# --- tests --------------------------------------------------------------------------------------------


@pytest.fixture
def files(store_location, tmp_path):
    """(store location, key file) on each engine; the processes open their own stores."""
    return store_location, tmp_path / "conf" / "store.key"


def test_two_processes_writing_and_reading_at_once(files):
    path, key_file = files
    store = _open(path, key_file)
    store.connectors.create("shared", "https://s/mcp", "bearer", credential_mode="per_agent")
    _run(_writer_reader, (path, key_file, "p1", 25), (path, key_file, "p2", 25))
    assert len(store.agents.list()) == 50
    assert len(store.audit.list(limit=1000)) == 50
    assert len(store.credentials.health()) == 50


def test_ten_cli_like_processes_on_a_fresh_store(files):
    path, key_file = files
    Keyring.from_file(key_file)  # the key file exists before; the store file does not (concurrent migration)
    started = time.perf_counter()
    durations = _run(_cli_like, *[(path, key_file, i) for i in range(10)])
    wall = time.perf_counter() - started
    store = _open(path, key_file)
    assert store.schema_version() == LATEST_VERSION  # every migration ran exactly once
    assert sorted(c.name for c in store.connectors.list()) == sorted(f"conn-{i}" for i in range(10))
    assert store.tools.page(limit=1).total == 500
    print(
        f"\n10 CLI-like processes (open + 6 operations each): wall {wall:.2f} s, "
        f"per process {min(durations):.2f}-{max(durations):.2f} s"
    )


def test_compare_and_swap_between_two_processes(files):
    path, key_file = files
    storage = _open(path, key_file).oauth_storage()
    storage.save_tokens(CredentialKey("c"), TokenSet("at-0", refresh_token="rt-0"), expected_version=None)
    barrier = SPAWN.Barrier(2)
    outcomes = _run(_cas_once, (path, key_file, barrier, "a"), (path, key_file, barrier, "b"))
    assert sorted(outcomes) == ["lost", "won"]
    assert storage.load_tokens(CredentialKey("c")).version == 2


def test_processes_refresh_a_credential_exactly_once_c03(files, sample_server_factory):
    """Four processes find the credential expired at once; our refresh path makes one token request."""
    import asyncio
    import hashlib
    from dataclasses import replace

    from core.net import NetworkPolicy, create_http_client
    from core.oauth import ConnectorSettings, OAuthHttp, authorize_headless

    path, key_file = files
    server = sample_server_factory("sdk_oauth")
    storage = _open(path, key_file).oauth_storage()
    key = CredentialKey("c", "")

    async def authorize():
        async with create_http_client(NetworkPolicy.allowing("127.0.0.1")) as client:
            return await authorize_headless(
                storage, key, ConnectorSettings(server.url), http=OAuthHttp(client)
            )

    tokens = asyncio.run(authorize())
    now = time.time()
    expired = storage.save_tokens(
        key, replace(tokens, expires_at=now - 10, issued_at=now - 3600), expected_version=tokens.version
    )
    server.reset()
    at_lock = SPAWN.Barrier(4)
    outcomes = _run(_refresh_through_ours, *[(path, key_file, at_lock)] * 4)
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0, counters
    stored = storage.load_tokens(key)
    assert stored.version == expired.version + 1 and stored.refresh_token != expired.refresh_token
    assert outcomes == [hashlib.sha256(stored.access_token.encode()).hexdigest()[:16]] * 4


def _keep_refreshing(storage, key, stop, log):
    while not stop.is_set():
        current = storage.load_tokens(key)
        n = int(current.access_token.split("-")[1]) + 1
        try:
            storage.save_tokens(
                key, TokenSet(f"at-{n}", refresh_token=f"rt-{n}"), expected_version=current.version
            )
            log.append(n)
        except ConflictError:
            log.append(-1)


def test_key_rotation_while_another_thread_refreshes_c11(files):
    path, key_file = files
    store = _open(path, key_file)
    storage = store.oauth_storage()
    key = CredentialKey("c")
    storage.save_tokens(key, TokenSet("at-0", refresh_token="rt-0"), expected_version=None)
    for i in range(20):  # more rows to re-encrypt, so rotation and refreshes interleave
        storage.save_tokens(
            CredentialKey("c", f"agent-{i}"),
            TokenSet(f"x-{i}", refresh_token=f"y-{i}"),
            expected_version=None,
        )
    old_key = store.keyring.active_id
    stop, log = threading.Event(), []
    refresher = threading.Thread(target=_keep_refreshing, args=(storage, key, stop, log))
    refresher.start()
    try:
        while len(log) < 5:
            time.sleep(0.01)
        report = store.keys.rotate(batch_size=1)
        before_stop = len(log)
        while len(log) < before_stop + 5:
            time.sleep(0.01)
    finally:
        stop.set()
        refresher.join()
    assert -1 not in log, "a refresh lost its compare-and-swap to the re-encryption"
    final = storage.load_tokens(key)
    assert final.access_token == f"at-{log[-1]}" and final.refresh_token == f"rt-{log[-1]}"
    assert report.retired == (old_key,) and report.unreadable == 0
    assert old_key not in store.keyring.key_ids
    assert set(store.keys.usage()) == {store.keyring.active_id}
    assert all(
        storage.load_tokens(CredentialKey("c", f"agent-{i}")).access_token == f"x-{i}" for i in range(20)
    )


def test_key_rotation_in_another_process_while_this_one_refreshes(files):
    path, key_file = files
    store = _open(path, key_file)
    storage = store.oauth_storage()
    key = CredentialKey("c")
    storage.save_tokens(key, TokenSet("at-0", refresh_token="rt-0"), expected_version=None)
    for i in range(20):
        storage.save_tokens(CredentialKey("c", f"agent-{i}"), TokenSet(f"x-{i}"), expected_version=None)
    old_key = store.keyring.active_id
    stop, log = threading.Event(), []
    refresher = threading.Thread(target=_keep_refreshing, args=(storage, key, stop, log))
    refresher.start()
    try:
        (reencrypted,) = _run(_rotate, (path, key_file))
        before_stop = len(log)
        while len(log) < before_stop + 3:
            time.sleep(0.01)
    finally:
        stop.set()
        refresher.join()
    assert -1 not in log
    assert reencrypted >= 20
    assert storage.load_tokens(key).access_token == f"at-{log[-1]}"
    assert old_key not in store.keyring.key_ids  # this process picked up the new key file
    blobs = raw_execute(path, "SELECT access_token FROM credentials")
    assert {key_id_of(bytes(b)) for (b,) in blobs} == {store.keyring.active_id}


def test_interrupted_rotation_can_be_rerun(files):
    path, key_file = files
    store = _open(path, key_file)
    storage = store.oauth_storage()
    for i in range(5):
        storage.save_tokens(CredentialKey("c", f"a{i}"), TokenSet(f"t{i}"), expected_version=None)
    old = store.keyring.active_id
    store.keyring.rotate()  # the job "died" after adding the key, before re-encrypting anything
    assert store.keys.retire_unused() == ((), (old,))  # old key still in use: kept
    report = store.keys.reencrypt()
    assert report.reencrypted == 5 and report.retired == (old,)
    assert [storage.load_tokens(CredentialKey("c", f"a{i}")).access_token for i in range(5)] == [
        f"t{i}" for i in range(5)
    ]
