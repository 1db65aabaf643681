"""Choosing the engine from the store location, and what each engine must refuse: unreachable or
misconfigured PostgreSQL, URLs taken for file names, queries that escape the read-only sandbox
(#16.5). Also retention of the audit log and auth trace (#16.6) and flash messages shared between
processes, on both engines."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from core.config import load_settings
from core.errors import ConfigurationError, StoreError
from core.oauth.storage import CredentialKey
from core.oauth.trace import TraceEvent
from core.store import Keyring, RetentionPolicy, Store
from core.store.retention import DAY
from tests.fixtures.postgres import raw_execute

# --- choosing the engine ------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_postgresql_url_selects_postgresql(postgres_url, tmp_path):
    store = Store.open(postgres_url, settings=load_settings({"SWITCHBOARD_KEY_FILE": str(tmp_path / "k")}))
    try:
        assert store.engine.name == "postgresql" and store.path is None
        assert "***" in store.location and postgres_url.split(":")[2].split("@")[0] not in store.location
    finally:
        store.close()


def test_settings_keep_a_url_as_a_string():
    url = "postgresql://sb:pw@db.internal:5432/switchboard"
    settings = load_settings({"SWITCHBOARD_STORE": url, "HOME": "/home/x"})
    assert settings.store_url == url and "pw" not in repr(settings)
    assert str(settings.store_path).endswith("switchboard.duckdb")


def test_an_unreachable_server_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"postgresql://sb:the-password@127.0.0.1:{_closed_port()}/switchboard"
    with pytest.raises(StoreError, match="cannot reach PostgreSQL") as refused:
        Store(url, keyring=Keyring.generate())
    text = str(refused.value)
    assert "\n" not in text and "the-password" not in text and "server is running" in text
    assert list(tmp_path.iterdir()) == []  # the URL never became a file or directory


def test_bad_credentials_name_the_user_not_the_password(postgres_server):
    url = postgres_server.url("postgres", password="wrong-password")
    with pytest.raises(StoreError, match="refused the credentials of user 'switchboard'") as refused:
        Store(url, keyring=Keyring.generate())
    assert "wrong-password" not in str(refused.value) and "SWITCHBOARD_STORE" in refused.value.hint


def test_a_missing_database_names_createdb(postgres_server):
    with pytest.raises(StoreError, match="no database 'nowhere'") as refused:
        Store(postgres_server.url("nowhere"), keyring=Keyring.generate())
    assert "createdb" in refused.value.hint


def test_other_url_schemes_are_refused_not_taken_for_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="unsupported scheme 'mysql'"):
        Store("mysql://u@h/db", keyring=Keyring.generate())
    assert list(tmp_path.iterdir()) == []


def test_the_cli_reports_an_unreachable_store_in_one_line(tmp_path):
    env = {
        **os.environ,
        "SWITCHBOARD_STORE": f"postgresql://sb:secret-pw@127.0.0.1:{_closed_port()}/x",
        "SWITCHBOARD_KEY_FILE": str(tmp_path / "store.key"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli", "connector", "list"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach PostgreSQL" in lines[0] and "secret-pw" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.key"]


# --- the read-only query sandbox (#16.5) --------------------------------------------------------------


def test_query_cannot_read_the_key_file(store_factory, engine, tmp_path):
    store = store_factory()
    key_file = tmp_path / "config" / "store.key"
    assert key_file.exists()
    if engine == "duckdb":
        reader, refusal = f"SELECT content FROM read_text('{key_file}')", "disabled by configuration"
    else:
        reader, refusal = f"SELECT pg_read_file('{key_file}') AS content", "permission denied"
    with pytest.raises(StoreError, match=refusal):
        store.query(reader)


def test_duckdb_query_cannot_reach_the_network_or_load_extensions(tmp_path):
    store = Store(tmp_path / "s.duckdb", keyring=Keyring.generate())
    for sql in (
        f"SELECT * FROM read_csv('http://127.0.0.1:{_closed_port()}/x.csv')",
        f"SELECT * FROM read_parquet('https://127.0.0.1:{_closed_port()}/x.parquet')",
        "SELECT * FROM glob('/etc/*')",
    ):
        with pytest.raises(StoreError, match="disabled by configuration"):
            store.query(sql)


def test_a_select_that_would_write_is_refused(store_factory, store_location):
    store = store_factory()
    store.connectors.create("c", "https://c/mcp", "none")
    with pytest.raises(StoreError, match="query failed"):
        store.query("SELECT nextval('audit_ids') AS n")
    assert store.audit.record(connector_id="x", tool="t", status="ok") == 1  # the sequence never moved
    assert store.query("SELECT count(*) AS n FROM connectors")["n"][0] == 1


def test_query_on_postgresql_runs_as_the_reader_role(postgres_url):
    store = Store(postgres_url, keyring=Keyring.generate())
    try:
        frame = store.query("SELECT current_user AS who, current_setting('transaction_read_only') AS ro")
    finally:
        store.close()
    assert (frame["who"][0], frame["ro"][0]) == ("switchboard_query", "on")


def test_query_as_a_postgresql_superuser_is_refused(postgres_server, postgres_url, tmp_path):
    database = postgres_url.rsplit("/", 1)[1]
    admin_url = postgres_server.url(database, user="postgres", password=postgres_server.superuser_password)
    store = Store(admin_url, keyring=Keyring.from_file(tmp_path / "store.key"))
    try:
        with pytest.raises(ConfigurationError, match="superuser"):
            store.query("SELECT 1 AS one")
    finally:
        store.close()


# --- retention (#16.6) --------------------------------------------------------------------------------


def _history(store, calls: int, steps: int) -> None:
    for i in range(calls):
        store.audit.record(connector_id="c", tool=f"t{i}", status="ok")
    for i in range(steps):
        store.auth_trace.record(
            CredentialKey("c"), "attempt", TraceEvent(f"s{i}", "GET", "https://as/x", 200, 1.0)
        )


def test_retention_by_age(store_factory, store_location):
    store = store_factory(retention=RetentionPolicy(audit_rows=None, trace_rows=None, interval=3600))
    _history(store, 4, 4)
    store.retention.wait(10)
    old = time.time() - 100 * DAY
    raw_execute(store_location, "UPDATE audit_log SET called_at = ? WHERE tool IN ('t0', 't1')", [old])
    raw_execute(store_location, "UPDATE auth_trace SET recorded_at = ? WHERE step = 's0'", [old])
    assert store.retention.apply() == {"audit_log": 2, "auth_trace": 1}
    assert [r["tool"] for r in store.audit.list()] == ["t3", "t2"]
    assert [s["step"] for s in store.auth_trace.attempt(CredentialKey("c"))] == ["s1", "s2", "s3"]


def test_retention_by_row_count(store_factory):
    store = store_factory(retention=RetentionPolicy(audit_rows=3, trace_rows=2, interval=3600))
    _history(store, 5, 5)
    store.retention.wait(10)
    store.retention.apply()
    assert [r["tool"] for r in store.audit.list()] == ["t4", "t3", "t2"]
    assert [s["step"] for s in store.auth_trace.attempt(CredentialKey("c"))] == ["s3", "s4"]


def test_retention_runs_in_the_background_after_writes(store_factory):
    store = store_factory(retention=RetentionPolicy(audit_rows=2, trace_rows=2, interval=0))
    _history(store, 6, 0)
    deadline = time.monotonic() + 30
    while len(store.audit.list()) > 2 and time.monotonic() < deadline:
        store.retention.wait(10)
        store.audit.record(connector_id="c", tool="later", status="ok")
    store.retention.wait(10)
    assert len(store.audit.list()) <= 3  # pruned to 2, plus at most the write that started the last prune


def test_retention_settings_from_the_environment():
    policy = RetentionPolicy.from_env(
        {"SWITCHBOARD_AUDIT_RETENTION_DAYS": "7", "SWITCHBOARD_TRACE_RETENTION_ROWS": "0"}
    )
    assert (policy.audit_days, policy.audit_rows, policy.trace_days, policy.trace_rows) == (
        7,
        1_000_000,
        30,
        None,
    )
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_AUDIT_RETENTION_ROWS"):
        RetentionPolicy.from_env({"SWITCHBOARD_AUDIT_RETENTION_ROWS": "lots"})


# --- flash messages -----------------------------------------------------------------------------------


def test_a_message_put_by_one_process_is_taken_once_by_another(store_factory):
    callback_replica, page_replica = store_factory(), store_factory()
    key = callback_replica.messages.put({"ok": True, "message": "connected linear", "connector": "linear"})
    assert page_replica.messages.take(key) == {
        "ok": True,
        "message": "connected linear",
        "connector": "linear",
    }
    assert page_replica.messages.take(key) is None and callback_replica.messages.take(key) is None
    assert page_replica.messages.take("never-issued") is None and page_replica.messages.take(None) is None


def test_messages_expire_and_their_keys_are_not_stored(store_factory, store_location):
    store = store_factory()
    key = store.messages.put({"ok": False, "message": "denied"}, ttl=-1)
    assert key not in str(raw_execute(store_location, "SELECT * FROM flash_messages"))
    assert store.messages.take(key) is None
