"""The live catalog has no plaintext secret column (R-06), and every encrypted column is registered."""

import re

import duckdb
import pytest

from core.store import Keyring, Store
from core.store.schema import SECRET_TABLES

# Column names that look secret-ish but hold no secret (checked one by one).
NOT_SECRETS = {
    ("credentials", "token_type"),
    ("credentials", "token_endpoint"),
    ("pending_authorizations", "token_endpoint"),
    ("oauth_clients", "token_endpoint_auth_method"),
    ("oauth_clients", "client_secret_expires_at"),
    ("key_usage", "key_id"),
    ("pending_authorizations", "state_hash"),
    ("flash_messages", "key_hash"),  # SHA-256 of the random key, like state_hash
    ("audit_log", "credential_fingerprint"),
    ("agent_tokens", "token_hash"),  # SHA-256 of a 256-bit random token: nothing to recover
    ("audit_log", "token_id"),  # which agent token made a gateway call (an id, not the token)
    ("ended_sessions", "session_hash"),  # SHA-256 of a signed-out session's 128-bit random id
}
SECRET_LOOKING = re.compile(r"secret|token|verifier|password|key|state|cookie|session|code", re.IGNORECASE)


@pytest.fixture
def columns(tmp_path):
    Store(tmp_path / "s.duckdb", keyring=Keyring.generate())
    with duckdb.connect(str(tmp_path / "s.duckdb")) as con:
        return con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main'"
        ).fetchall()


def test_registered_secret_columns_are_blobs(columns):
    types = {(t, c): d for t, c, d in columns}
    for spec in SECRET_TABLES:
        for column in spec.columns:
            assert types[(spec.table, column)] == "BLOB", (spec.table, column)
        for column in spec.key + spec.context:
            assert (spec.table, column) in types


def test_no_plaintext_secret_column(columns):
    registered = {(s.table, c) for s in SECRET_TABLES for c in s.columns}
    suspicious = [
        (t, c, d)
        for t, c, d in columns
        if SECRET_LOOKING.search(c) and (t, c) not in registered and (t, c) not in NOT_SECRETS
    ]
    assert suspicious == []


def test_every_blob_column_is_an_encrypted_secret(columns):
    registered = {(s.table, c) for s in SECRET_TABLES for c in s.columns}
    assert {(t, c) for t, c, d in columns if d == "BLOB"} == registered
