"""The store: migrations, CRUD of every table, credential resolution, encryption at rest, file hygiene."""

import base64
import json
import os
import stat
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from core.errors import (
    ConfigurationError,
    ConflictError,
    CredentialUnavailable,
    NotFoundError,
    StoreBusy,
    StoreError,
)
from core.oauth.storage import ClientRegistration, CredentialKey, PendingAuthorization, TokenSet
from core.oauth.trace import TraceEvent
from core.store import Keyring, Store
from core.store.crypto import key_id_of
from core.store.schema import LATEST_VERSION, MIGRATIONS
from tests.fixtures.postgres import raw_execute


@pytest.fixture
def keyring(tmp_path):
    return Keyring.from_file(tmp_path / "config" / "store.key")


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "switchboard.duckdb"


@pytest.fixture
def store(store_factory):
    """On each engine (see tests/fixtures/postgres.py)."""
    return store_factory()


@pytest.fixture
def duck_store(path, keyring):
    """DuckDB only: for what is about files on disk and DuckDB's own locking."""
    return Store(path, keyring=keyring)


def raw(path):
    """A plain DuckDB connection, as an operator's DuckDB shell (or an attacker) would open the file."""
    return duckdb.connect(str(path))


# --- migrations ---------------------------------------------------------------------------------------


def test_migrations_from_empty_and_reopen_are_idempotent(store_factory, store_location):
    store_factory()
    store = store_factory()
    assert store.schema_version() == LATEST_VERSION
    assert raw_execute(store_location, "SELECT count(*) FROM schema_version") == [(len(MIGRATIONS),)]


def test_a_store_from_a_newer_switchboard_is_refused_and_nothing_is_written(store_factory, store_location):
    store_factory().agents.create("before")
    raw_execute(store_location, "INSERT INTO schema_version VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="newer Switchboard") as refused:
        store_factory()
    assert refused.value.hint == "upgrade Switchboard"
    assert raw_execute(store_location, "SELECT name FROM agents") == [("before",)]
    assert raw_execute(store_location, "SELECT max(version) FROM schema_version") == [(999,)]


def test_a_store_opened_for_one_command_checks_its_schema_in_its_first_session(store_factory, store_location):
    """`migrate_on_open=False` (the CLI: one open of the file per command): a new store is migrated
    by the first session; a store from a newer Switchboard is refused there, before anything is
    read or written, and again by every later session."""
    fresh = store_factory(migrate_on_open=False)
    assert [a.name for a in fresh.agents.list()] == [] and fresh.schema_version() == LATEST_VERSION
    fresh.agents.create("before")
    raw_execute(store_location, "INSERT INTO schema_version VALUES (999, 'future', 0)")
    newer = store_factory(migrate_on_open=False)
    for _ in range(2):
        with pytest.raises(StoreError, match="newer Switchboard"):
            newer.agents.create("after")
    assert raw_execute(store_location, "SELECT name FROM agents") == [("before",)]


def test_memory_store_works_and_closes(keyring):
    store = Store(":memory:", keyring=keyring)
    store.agents.create("a")
    assert [a.name for a in store.agents.list()] == ["a"]
    store.close()
    with pytest.raises(StoreError):
        store.agents.list()


# --- connectors and agents ----------------------------------------------------------------------------


def test_connector_crud(store):
    created = store.connectors.create(
        "linear",
        "https://mcp.linear.app/mcp",
        "oauth",
        scopes=["read", "write"],
        client_id="cid",
        client_secret="c-secret",
        registration_method="pre_registered",
    )
    assert (
        created.has_client_secret and created.scopes == ("read", "write") and created.status == "never_synced"
    )
    assert store.connectors.named("linear") == store.connectors.get(created.id)
    assert store.connectors.client_secret(created.id).reveal() == "c-secret"

    updated = store.connectors.update(
        created.id,
        prm={"resource": "https://mcp.linear.app/mcp"},
        as_metadata={"issuer": "https://linear.app"},
        issuer="https://linear.app",
        status="needs_auth",
        client_secret=None,
        name="linear2",
    )
    assert updated.name == "linear2" and updated.prm == {"resource": "https://mcp.linear.app/mcp"}
    assert updated.issuer == "https://linear.app" and not updated.has_client_secret
    assert store.connectors.client_secret(created.id) is None
    assert updated.info().name == "linear2"

    store.connectors.create("render", "https://mcp.render.com/mcp", "bearer")
    assert [c.name for c in store.connectors.list()] == ["linear2", "render"]
    store.connectors.delete(created.id)
    with pytest.raises(NotFoundError):
        store.connectors.named("linear2")
    with pytest.raises(NotFoundError):
        store.connectors.get(created.id)


def test_connector_validation(store):
    a = store.connectors.create("a", "https://a/mcp", "none").id
    with pytest.raises(ConfigurationError, match="already exists"):
        store.connectors.create("a", "https://b/mcp", "none")
    with pytest.raises(ConfigurationError, match="auth_type"):
        store.connectors.create("b", "https://b/mcp", "magic")
    with pytest.raises(ConfigurationError, match="credential_mode"):
        store.connectors.create("b", "https://b/mcp", "none", credential_mode="sometimes")
    with pytest.raises(ConfigurationError, match="unknown connector field"):
        store.connectors.update(a, id="x")
    with pytest.raises(ConfigurationError, match="status"):
        store.connectors.update(a, status="great")
    with pytest.raises(ConfigurationError, match="registration_method"):
        store.connectors.update(a, registration_method="fax")
    b = store.connectors.create("b", "https://b/mcp", "none").id
    with pytest.raises(ConfigurationError, match="already exists"):
        store.connectors.update(b, name="a")


def test_agent_crud(store):
    bot = store.agents.create("bot", "does things")
    assert store.agents.named("bot") == bot == store.agents.get(bot.id)
    with pytest.raises(ConfigurationError):
        store.agents.create("bot")
    store.agents.create("alpha")
    assert [a.name for a in store.agents.list()] == ["alpha", "bot"]
    store.agents.delete(bot.id)
    with pytest.raises(NotFoundError):
        store.agents.named("bot")
    with pytest.raises(NotFoundError):
        store.agents.get(bot.id)


def test_deleting_an_agent_removes_its_credentials_only(store):
    conn = store.connectors.create("c", "https://c/mcp", "bearer", credential_mode="per_agent")
    a, b = store.agents.create("a"), store.agents.create("b")
    store.credentials.save_secret(CredentialKey(conn.id, a.id), "sa")
    store.credentials.save_secret(CredentialKey(conn.id, b.id), "sb")
    store.agents.delete(a.id)
    assert store.credentials.info(CredentialKey(conn.id, a.id)) is None
    assert store.credentials.load_secret(CredentialKey(conn.id, b.id)).reveal() == "sb"


# --- credentials --------------------------------------------------------------------------------------


def test_static_secret_round_trip_and_info(store):
    conn = store.connectors.create("render", "https://mcp.render.com/mcp", "bearer")
    key = CredentialKey(conn.id, "")
    info = store.credentials.save_secret(key, "rnd_secret", identity="ops@example.com")
    assert info.kind == "bearer" and info.status == "connected" and info.identity == "ops@example.com"
    assert info.fingerprint == store.credentials.load_secret(key).fingerprint
    assert "rnd_secret" not in repr(info)
    store.credentials.save_secret(key, "rnd_secret_2")
    assert store.credentials.load_secret(key).reveal() == "rnd_secret_2"
    assert store.connectors.get(conn.id).has_shared_credential
    assert store.credentials.delete(key) and not store.credentials.delete(key)


def test_static_secret_refused_for_oauth_connectors(store):
    conn = store.connectors.create("o", "https://o/mcp", "oauth")
    with pytest.raises(ConfigurationError, match="no static secret"):
        store.credentials.save_secret(CredentialKey(conn.id, ""), "x")
    with pytest.raises(ConfigurationError, match="empty"):
        store.credentials.save_secret(CredentialKey(conn.id, ""), "")


def test_health_status_and_rejections(store):
    conn = store.connectors.create("o", "https://o/mcp", "oauth")
    agent = store.agents.create("a")
    storage = store.oauth_storage()
    key = CredentialKey(conn.id, "")
    storage.save_tokens(
        key,
        TokenSet("at", refresh_token="rt", expires_at=time.time() + 3600, scopes=("s",)),
        expected_version=None,
    )
    store.credentials.record_rejection(key, 401)
    store.credentials.record_rejection(key, 403)
    store.credentials.set_identity(key, "me@example.com")
    (info,) = store.credentials.health()
    assert info.connector == "o" and info.agent is None and info.kind == "oauth"
    assert info.last_401_at and info.last_403_at and info.expires_at and info.scopes == ("s",)
    assert info.identity == "me@example.com"
    store.credentials.set_status(key, "error", "server down")
    assert (
        store.credentials.info(key).status == "error" and store.credentials.info(key).reason == "server down"
    )
    with pytest.raises(ConfigurationError):
        store.credentials.record_rejection(key, 500)
    with pytest.raises(ConfigurationError):
        store.credentials.set_status(key, "fine")
    assert store.credentials.health(agent_id=agent.id) == []
    assert store.credentials.info(CredentialKey(conn.id, agent.id)) is None


# --- encryption at rest -------------------------------------------------------------------------------


def _two_oauth_credentials(store):
    conn = store.connectors.create("o", "https://o/mcp", "oauth", credential_mode="per_agent")
    a, b = store.agents.create("a"), store.agents.create("b")
    storage = store.oauth_storage()
    key_a, key_b = CredentialKey(conn.id, a.id), CredentialKey(conn.id, b.id)
    storage.save_tokens(key_a, TokenSet("token-of-a", refresh_token="refresh-a"), expected_version=None)
    storage.save_tokens(key_b, TokenSet("token-of-b", refresh_token="refresh-b"), expected_version=None)
    return storage, key_a, key_b


def test_a_ciphertext_moved_to_another_row_makes_that_credential_need_reauth(store, store_location):
    storage, key_a, key_b = _two_oauth_credentials(store)
    raw_execute(  # an attacker with write access to the database copies A's token into B's row
        store_location,
        "UPDATE credentials SET access_token = (SELECT access_token FROM credentials WHERE agent_id = ?) "
        "WHERE agent_id = ?",
        [key_a.agent_id, key_b.agent_id],
    )
    with pytest.raises(CredentialUnavailable):
        storage.load_tokens(key_b)
    info = store.credentials.info(key_b)
    assert info.status == "needs_reauth" and "another row" in info.reason
    assert storage.needs_reauth(key_b)
    assert storage.load_tokens(key_a).access_token == "token-of-a"  # the source row is untouched
    assert store.credentials.info(key_a).status == "connected"


def test_a_static_secret_moved_between_rows_fails_closed(store, store_location):
    conn = store.connectors.create("c", "https://c/mcp", "bearer", credential_mode="per_agent")
    a, b = store.agents.create("a"), store.agents.create("b")
    store.credentials.save_secret(CredentialKey(conn.id, a.id), "secret-a")
    store.credentials.save_secret(CredentialKey(conn.id, b.id), "secret-b")
    raw_execute(
        store_location,
        "UPDATE credentials SET secret = (SELECT secret FROM credentials WHERE agent_id = ?) WHERE agent_id = ?",
        [a.id, b.id],
    )
    with pytest.raises(CredentialUnavailable):
        store.credentials.load_secret(CredentialKey(conn.id, b.id))
    assert store.credentials.info(CredentialKey(conn.id, b.id)).status == "needs_reauth"


def test_a_changed_resource_binding_fails_closed(store, store_location):
    # Rewriting the row's resource (to send the token elsewhere) breaks the associated data.
    storage, key_a, _ = _two_oauth_credentials(store)
    raw_execute(
        store_location,
        "UPDATE credentials SET resource = 'https://evil.example/mcp' WHERE agent_id = ?",
        [key_a.agent_id],
    )
    with pytest.raises(CredentialUnavailable):
        storage.load_tokens(key_a)


def test_unknown_key_id_fails_closed(store, store_factory, tmp_path):
    _, key_a, _ = _two_oauth_credentials(store)
    stranger = store_factory(keyring=Keyring.from_file(tmp_path / "other.key"))
    with pytest.raises(CredentialUnavailable, match="not in the keyring"):
        stranger.oauth_storage().load_tokens(key_a)
    assert stranger.credentials.info(key_a).status == "needs_reauth"


def test_unreadable_client_secrets_and_verifiers_fail_closed(store, store_location):
    storage = store.oauth_storage()
    conn = store.connectors.create("o", "https://o/mcp", "oauth", client_secret="pre-registered")
    storage.save_client(
        ClientRegistration("https://as", "cid", "dcr-secret", redirect_uris=("https://cb/1",))
    )
    storage.save_pending(
        PendingAuthorization(
            "state-1",
            CredentialKey(conn.id),
            "verifier",
            "https://as",
            "cid",
            "https://cb/1",
            "https://o/mcp",
        )
    )
    for table, column in (
        ("connectors", "client_secret"),
        ("oauth_clients", "client_secret"),
        ("pending_authorizations", "code_verifier"),
    ):
        ((blob,),) = raw_execute(store_location, f"SELECT {column} FROM {table}")
        raw_execute(store_location, f"UPDATE {table} SET {column} = ?", [bytes(blob)[:-1]])
    with pytest.raises(CredentialUnavailable):
        store.connectors.client_secret(conn.id)
    with pytest.raises(CredentialUnavailable):
        storage.get_client("https://as", "https://cb/1")
    with pytest.raises(CredentialUnavailable):
        storage.take_pending("state-1")
    assert storage.take_pending("state-1") is None  # consumed even though unreadable: no replay


def _scan(directory, needles):
    hits = []
    for file in directory.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            hits += [(file.name, n) for n in needles if n in content]
    return hits


def test_marker_secrets_never_reach_the_database_files(duck_store, path, keyring):
    store = duck_store
    marker = "CANARY-5c1e7d0b"
    storage = store.oauth_storage()
    bearer = store.connectors.create("b", "https://b/mcp", "bearer")
    oauth = store.connectors.create("o", "https://o/mcp", "oauth", client_secret=f"{marker}-connector-secret")
    agent = store.agents.create("a")
    with store.session():  # keep the connection open so the WAL still holds this session's writes
        store.credentials.save_secret(CredentialKey(bearer.id, ""), f"{marker}-bearer")
        storage.save_tokens(
            CredentialKey(oauth.id, agent.id),
            TokenSet(f"{marker}-access", refresh_token=f"{marker}-refresh"),
            expected_version=None,
        )
        storage.save_client(
            ClientRegistration(
                "https://as",
                "cid",
                f"{marker}-client-secret",
                redirect_uris=("https://cb",),
                registration={"client_secret": f"{marker}-in-registration"},
            )
        )
        storage.save_pending(
            PendingAuthorization(
                f"{marker}-state",
                CredentialKey(oauth.id),
                f"{marker}-verifier",
                "https://as",
                "cid",
                "https://cb",
                "https://o/mcp",
            )
        )
        store.audit.record(
            connector_id=oauth.id,
            tool="t",
            status="ok",
            arguments={"api_key": f"{marker}-arg", "nested": {"password": f"{marker}-pw"}},
        )
        store.auth_trace.record(
            CredentialKey(oauth.id),
            "attempt",
            TraceEvent("token", "POST", f"https://as/token?code={marker}-code", 200, 1.0),
        )
        wal = path.with_name(path.name + ".wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        wal_bytes = wal.read_bytes()
        assert marker.encode() not in wal_bytes
    with raw(path) as con:
        con.execute("CHECKPOINT")
    document = json.loads(keyring.path.read_text())
    key_bytes = [base64.b64decode(k) for k in document["keys"].values()] + [
        k.encode() for k in document["keys"].values()
    ]
    assert _scan(path.parent, [marker.encode(), marker.encode("utf-16-le"), *key_bytes]) == []
    # ... while everything is still readable through the store.
    assert store.credentials.load_secret(CredentialKey(bearer.id, "")).reveal() == f"{marker}-bearer"
    assert storage.take_pending(f"{marker}-state").code_verifier == f"{marker}-verifier"
    assert storage.get_client("https://as", "https://cb").registration == {}


def test_file_modes(duck_store, path):
    store = duck_store
    store.agents.create("a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.with_name(path.name + ".lock").stat().st_mode) == 0o600
    conn = store.connectors.create("o", "https://o/mcp", "oauth")
    with store.refresh_lock(CredentialKey(conn.id)):
        locks = path.with_name(path.name + ".locks")
        assert stat.S_IMODE(locks.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in locks.iterdir())


def test_encryption_counter_forces_rotation_before_the_limit(store_factory, store_location):
    store = store_factory(max_encryptions_per_key=3)
    keyring = store.keyring
    conn = store.connectors.create("b", "https://b/mcp", "bearer")
    first = keyring.active_id
    key = CredentialKey(conn.id, "")
    for i in range(5):
        store.credentials.save_secret(key, f"s{i}")
    assert keyring.active_id != first
    assert first in keyring.key_ids  # still decrypts what it wrote
    assert store.credentials.load_secret(key).reveal() == "s4"
    usage = dict(raw_execute(store_location, "SELECT key_id, encryptions FROM key_usage"))
    assert usage[first] == 3


# --- audit log and auth trace -------------------------------------------------------------------------


def test_audit_log(store):
    conn = store.connectors.create("c", "https://c/mcp", "bearer")
    agent = store.agents.create("a")
    first = store.audit.record(
        connector_id=conn.id,
        agent_id=agent.id,
        tool="search",
        status="ok",
        arguments={"q": "x", "token": "tkn", "headers": [{"Authorization": "Bearer z"}]},
        latency_ms=12.5,
        credential_fingerprint="0123abcd",
        operator="ops",
    )
    store.audit.record(connector_id=conn.id, tool="fail", status="error", error="boom")
    rows = store.audit.list()
    assert [r["tool"] for r in rows] == ["fail", "search"] and rows[1]["id"] == first
    assert rows[1]["arguments"] == {
        "q": "x",
        "token": "<redacted>",
        "headers": [{"Authorization": "<redacted>"}],
    }
    assert (
        rows[1]["connector"] == "c"
        and rows[1]["agent"] == "a"
        and rows[1]["credential_fingerprint"] == "0123abcd"
    )
    assert [r["tool"] for r in store.audit.list(agent_id=agent.id)] == ["search"]
    assert len(store.audit.list(connector_id=conn.id, limit=1)) == 1
    with pytest.raises(ConfigurationError, match="fingerprint"):
        store.audit.record(
            connector_id=conn.id, tool="t", status="ok", credential_fingerprint="the-whole-token"
        )
    with pytest.raises(ConfigurationError):
        store.audit.record(connector_id=conn.id, tool="t", status="meh")


def test_auth_trace(store):
    conn = store.connectors.create("o", "https://o/mcp", "oauth")
    key = CredentialKey(conn.id)
    store.auth_trace.record(key, "attempt-1", TraceEvent("prm", "GET", "https://o/.well-known/x", 404, 3.0))
    with store.session():
        store.auth_trace.record(
            key, "attempt-2", TraceEvent("prm", "GET", "https://o/.well-known/y", 200, 5.0)
        )
        store.auth_trace.record(
            key,
            "attempt-2",
            TraceEvent("token", "POST", "https://user:pw@as/token?code=abc#frag", 400, 9.0, "invalid_grant"),
        )
    steps = store.auth_trace.attempt(key)
    assert [s["step"] for s in steps] == ["prm", "token"]
    assert steps[1]["url"] == "https://as/token" and steps[1]["http_status"] == 400
    assert steps[1]["detail"] == "invalid_grant"
    assert [s["http_status"] for s in store.auth_trace.attempt(key, "attempt-1")] == [404]
    assert store.auth_trace.attempt(CredentialKey("nobody")) == []


# --- sessions and locking -----------------------------------------------------------------------------


def test_session_batches_operations_on_one_connection(store):
    with store.session() as s:
        s.agents.create("a")
        s.agents.create("b")
        with s.session():  # re-entrant
            assert len(s.agents.list()) == 2


def test_an_operation_that_fails_inside_a_session_rolls_back_alone(store):
    with store.session():
        store.agents.create("a")
        with pytest.raises(ConfigurationError):
            store.agents.create("a")
        store.agents.create("b")
    assert [a.name for a in store.agents.list()] == ["a", "b"]


def test_refresh_lock_inside_a_session_is_refused(store):
    conn = store.connectors.create("o", "https://o/mcp", "oauth")
    with (
        store.session(),
        pytest.raises(StoreError, match="refresh_lock"),
        store.refresh_lock(CredentialKey(conn.id)),
    ):
        pass


def _hold_with_duckdb(path, seconds):
    """A DuckDB shell of someone else: it knows nothing of our lock file."""
    code = f"import duckdb, time, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep({seconds})"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_store_busy_when_another_program_holds_the_file(path, keyring):
    store = Store(path, keyring=keyring, busy_timeout=0.3)
    holder = _hold_with_duckdb(path, 30)
    try:
        with pytest.raises(StoreBusy) as info:
            store.agents.list()
        assert "another program" in str(info.value) and "DuckDB shell" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    assert store.agents.list() == []


def test_waits_for_another_program_to_let_go(path, keyring):
    store = Store(path, keyring=keyring, busy_timeout=60)
    holder = _hold_with_duckdb(path, 1)
    try:
        started = time.monotonic()
        store.agents.create("after-the-shell")
        waited = time.monotonic() - started
    finally:
        holder.wait()
    assert [a.name for a in store.agents.list()] == ["after-the-shell"]
    print(f"\nwaited {waited:.2f} s for a DuckDB shell holding the file for ~1 s")


def test_two_store_objects_in_one_process_share_the_lock(store_factory):
    first, second = store_factory(), store_factory()
    with first.session():
        second.agents.create("nested")  # same thread: re-enters the shared lock, no self-deadlock
    assert [a.name for a in first.agents.list()] == ["nested"]


def test_busy_when_another_thread_holds_a_session_too_long(path, keyring):
    store = Store(path, keyring=keyring, busy_timeout=0.2)
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.session():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(10)
        with pytest.raises(StoreBusy, match="process or thread"):
            store.agents.list()
    finally:
        release.set()
        holder.join()


def test_refresh_lock_wait_is_bounded(store_factory):
    store = store_factory(refresh_timeout=0.2)
    key = CredentialKey("c")
    held, release = threading.Event(), threading.Event()

    def refresh_forever():
        with store.refresh_lock(key):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=refresh_forever)
    holder.start()
    try:
        held.wait(10)
        with pytest.raises(StoreBusy, match="refreshing"), store.refresh_lock(key):
            pass
    finally:
        release.set()
        holder.join()
    with store.refresh_lock(key):  # released: usable again
        pass


def test_conflict_error_is_a_store_error():
    assert issubclass(ConflictError, StoreError)


def test_key_usage_counts_secrets_per_key(store, keyring):
    conn = store.connectors.create("b", "https://b/mcp", "bearer", client_secret="x")
    store.credentials.save_secret(CredentialKey(conn.id), "y")
    assert store.keys.usage() == {keyring.active_id: 2}


def test_blobs_name_their_key(store, store_location, keyring):
    conn = store.connectors.create("b", "https://b/mcp", "bearer")
    store.credentials.save_secret(CredentialKey(conn.id), "y")
    ((blob,),) = raw_execute(store_location, "SELECT secret FROM credentials")
    assert key_id_of(bytes(blob)) == keyring.active_id


def test_open_uses_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_STORE", str(tmp_path / "s" / "x.duckdb"))
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "k" / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    store = Store.open()
    store.agents.create("a")
    assert (tmp_path / "s" / "x.duckdb").exists() and (tmp_path / "k" / "store.key").exists()
    monkeypatch.setenv("SWITCHBOARD_KEY", base64.b64encode(os.urandom(32)).decode())
    assert Store.open().keyring.active_id.startswith("env-")
