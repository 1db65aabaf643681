"""`store copy` between engines and `store migrate`: every row carried, ciphertexts unchanged and
still readable with the same keyring, row counts verified, a non-empty target refused."""

from __future__ import annotations

import pytest

from core.errors import ConfigurationError, StoreError
from core.oauth.storage import ClientRegistration, CredentialKey, PendingAuthorization, TokenSet
from core.oauth.trace import TraceEvent
from core.roles import Role
from core.signin.passwords import hash_password, password_matches
from core.store import Keyring, Store, transfer
from core.store.schema import LATEST_VERSION
from tests.fixtures.postgres import raw_execute


@pytest.fixture
def keyring(tmp_path):
    return Keyring.from_file(tmp_path / "config" / "store.key")


def _populate(store: Store) -> CredentialKey:
    oauth = store.connectors.create(
        "linear", "https://l/mcp", "oauth", client_secret="pre-secret", scopes=["r"]
    )
    bearer = store.connectors.create("render", "https://r/mcp", "bearer", credential_mode="per_agent")
    agent = store.agents.create("ops-bot", "does ops")
    key = CredentialKey(oauth.id, "")
    storage = store.oauth_storage()
    storage.save_tokens(
        key, TokenSet("access-1", refresh_token="refresh-1", scopes=("r",)), expected_version=None
    )
    store.credentials.save_secret(CredentialKey(bearer.id, agent.id), "bearer-of-ops")
    storage.save_client(ClientRegistration("https://as", "cid", "dcr-secret", redirect_uris=("https://cb",)))
    storage.save_pending(
        PendingAuthorization("state-1", key, "verifier-1", "https://as", "cid", "https://cb", "https://l/mcp")
    )
    store.tools.record_sync(
        oauth.id, "", [{"name": "search", "description": "find issues"}, {"name": "create"}]
    )
    store.tools.record_sync(oauth.id, "", [{"name": "search", "description": "find issues, faster"}])
    store.audit.record(connector_id=oauth.id, tool="search", status="ok", arguments={"q": "x"})
    store.auth_trace.record(key, "attempt-1", TraceEvent("token", "POST", "https://as/token", 200, 3.0))
    store.messages.put({"ok": True, "message": "hello"})
    # The agent gateway's rows: a token (its hash), a policy, manual pinning with one approval.
    store.agent_tokens.create(agent.id, "token-1", "ab" * 32, label="ci")
    store.policies.set(agent.id, [{"effect": "deny", "connector": "linear"}], 60, 2)
    store.pinning.set_mode(oauth.id, "manual")
    store.pinning.approve(oauth.id, "", ["search"], "ops")
    store.gateway.heartbeat("gateway-on-the-laptop", 0.0, stale_after=3600)
    store.operators.save("ada", Role.ADMIN, hash_password("ada's long password"))
    return key


def _secret_columns(location: str) -> list:
    return raw_execute(
        location,
        "SELECT connector_id, agent_id, secret, access_token, refresh_token FROM credentials "
        "ORDER BY connector_id, agent_id",
    )


def test_duckdb_to_postgresql_and_back(tmp_path, keyring, postgres_url):
    laptop = str(tmp_path / "laptop.duckdb")
    key = _populate(Store(laptop, keyring=keyring))
    report = transfer.copy(laptop, postgres_url, keyring=keyring)
    assert report.rows["credentials"] == 2 and report.rows["tools"] == 3 and report.rows["audit_log"] == 1

    server = Store(postgres_url, keyring=keyring)
    try:
        assert [
            bytes(v) if isinstance(v, memoryview) else v for row in _secret_columns(postgres_url) for v in row
        ] == [
            bytes(v) if isinstance(v, memoryview) else v for row in _secret_columns(laptop) for v in row
        ]  # ciphertexts carried byte for byte
        assert server.oauth_storage().load_tokens(key).refresh_token == "refresh-1"
        linear = server.connectors.named("linear").id
        assert server.connectors.client_secret(linear).reveal() == "pre-secret"
        assert server.oauth_storage().get_client("https://as", "https://cb").client_secret == "dcr-secret"
        assert server.oauth_storage().take_pending("state-1").code_verifier == "verifier-1"
        assert [c.name for c in server.connectors.list()] == ["linear", "render"]
        assert [c.name for c in server.tools.drift(linear).changes] == ["create", "search"]
        assert server.tools.page(search="faster").total == 1
        first_id = server.audit.list()[0]["id"]
        assert server.audit.record(connector_id="x", tool="t", status="ok") > first_id  # sequences moved on
        agent = server.agents.named("ops-bot").id
        assert [(t.id, t.label) for t in server.agent_tokens.list(agent)] == [("token-1", "ci")]
        assert [t.token_hash for t in server.agent_tokens.active(0.0)] == ["ab" * 32]
        assert server.policies.get(agent).requests_per_minute == 60
        assert server.pinning.mode(linear) == "manual"
        assert password_matches(server.operators.login_of("ada").password_hash, "ada's long password")
        assert {r["name"]: r["state"] for r in server.pinning.reviews(linear, "")}["search"] == "approved"
        # Gateways serving the target reload; the laptop's gateway heartbeat stays behind.
        assert server.gateway.changes()[0] >= 1
        assert raw_execute(postgres_url, "SELECT count(*) FROM gateway_instances") == [(0,)]
        assert server.tools.record_sync(linear, "", [{"name": "new"}]).snapshot_id > 2  # a fresh snapshot id
    finally:
        server.close()

    back = str(tmp_path / "back.duckdb")
    report_back = transfer.copy(postgres_url, back, keyring=keyring)
    assert report_back.rows["audit_log"] == 2 and report_back.rows["pending_authorizations"] == 0
    again = Store(back, keyring=keyring)
    assert again.oauth_storage().load_tokens(key).access_token == "access-1"
    assert (
        again.audit.record(connector_id="x", tool="t", status="ok")
        > max(r["id"] for r in again.audit.list()) - 1
    )


def test_a_non_empty_target_is_refused_unless_forced(tmp_path, keyring, postgres_url):
    laptop = str(tmp_path / "laptop.duckdb")
    _populate(Store(laptop, keyring=keyring))
    occupied = Store(postgres_url, keyring=keyring)
    occupied.agents.create("already-here")
    occupied.close()
    with pytest.raises(ConfigurationError, match="not empty") as refused:
        transfer.copy(laptop, postgres_url, keyring=keyring)
    assert "force" in refused.value.hint
    assert raw_execute(postgres_url, "SELECT name FROM agents") == [("already-here",)]  # nothing written
    transfer.copy(laptop, postgres_url, keyring=keyring, force=True)
    assert raw_execute(postgres_url, "SELECT name FROM agents") == [("ops-bot",)]


def test_a_short_copy_is_rolled_back(tmp_path, keyring, postgres_url, monkeypatch):
    laptop = str(tmp_path / "laptop.duckdb")
    _populate(Store(laptop, keyring=keyring))
    original = transfer._copy_table

    def lossy(read, write, table):
        copied = original(read, write, table)
        if table == "tools":
            write.execute("DELETE FROM tools WHERE name = 'create'")  # a row lost on the way
        return copied

    monkeypatch.setattr(transfer, "_copy_table", lossy)
    with pytest.raises(StoreError, match="copying tools wrote 2 rows of 3"):
        transfer.copy(laptop, postgres_url, keyring=keyring)
    assert raw_execute(postgres_url, "SELECT count(*) FROM connectors") == [(0,)]


def test_migrate_brings_a_store_to_this_version(tmp_path, keyring, postgres_url):
    assert transfer.migrate(postgres_url, keyring=keyring).schema_version == LATEST_VERSION
    assert transfer.migrate(str(tmp_path / "s.duckdb"), keyring=keyring).schema_version == LATEST_VERSION


def test_copying_a_store_onto_itself_is_refused(tmp_path, keyring):
    with pytest.raises(ConfigurationError, match="same store"):
        transfer.copy(str(tmp_path / "s.duckdb"), str(tmp_path / "s.duckdb"), keyring=keyring)


def test_every_table_is_copied_or_named_as_not_copied(store_factory, store_location):
    store_factory()  # creates the schema on this engine
    sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = " + (
        "'public'" if store_location.startswith("postgresql") else "'main'"
    )
    tables = {row[0] for row in raw_execute(store_location, sql)} - {"schema_version"}
    assert tables == set(transfer.TABLES) | set(transfer.NOT_COPIED)
