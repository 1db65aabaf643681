"""`Store`: Switchboard's state in one DuckDB file, shared by the dashboard, notebooks and CLI processes.

Concurrency design. DuckDB lets one process at a time open a file (a second one, even read-only,
gets "Could not set lock on file"), has no row locks, and a connection must not be used by two
threads at once. So every operation runs in a short *session*:

1. take the store lock: a re-entrant thread lock, then `flock` on `<store>.lock` (`locks.py`);
2. open a DuckDB connection, retrying with backoff while someone outside Switchboard (a DuckDB CLI)
   holds the file;
3. run the operation in one transaction; 4. close the connection and release the lock.

Waiting longer than `busy_timeout` for either lock raises `StoreBusy`. Opening an instance costs
about 11 ms and closing 3-5 ms (DuckDB builds its function catalog per instance), so callers that do
several operations in a row wrap them in `with store.session():` — one connection and one lock hold,
each operation still its own transaction. Sessions are per thread and re-entrant; keep them short,
since other processes wait for them, and never hold one while waiting on the network.

Compare-and-swap guards what the locks cannot: an OAuth refresh reads a credential, spends seconds
at the token endpoint, then writes with `WHERE version = ?`; a writer that lost gets `ConflictError`.
Read-refresh-write itself runs under `refresh_lock(key)` (flock on a per-credential file in
`<store>.locks/`), taken *before* and never inside a session.

":memory:" stores (tests) keep one instance alive and use a cursor per session.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

from core.auth_schemes import AUTH_SCHEMES, AUTH_TYPES
from core.config import Settings, ensure_private_dir, load_settings, restrict_file
from core.errors import (
    ConfigurationError,
    ConflictError,
    CredentialUnavailable,
    NotFoundError,
    StoreBusy,
    StoreError,
)
from core.models import CREDENTIAL_MODES, AgentInfo, CredentialInfo, ToolPage
from core.oauth.storage import CredentialKey
from core.oauth.trace import TraceEvent, trace_url
from core.redaction import redact_arguments
from core.store import tools as _tools
from core.store.crypto import Keyring, Secret, SecretContext, fingerprint, key_id_of
from core.store.locks import ExclusiveLock, lock_for
from core.store.oauth import StoreOAuthStorage
from core.store.records import Connector, RotationReport, SnapshotResult, ToolDrift
from core.store.schema import (
    CONNECTOR_SECRETS,
    CREDENTIAL_SECRETS,
    LATEST_VERSION,
    MIGRATIONS,
    SECRET_TABLES,
    SecretTable,
)
from core.store.sql import rows as _rows

log = logging.getLogger(__name__)

MEMORY = ":memory:"
DEFAULT_BUSY_TIMEOUT = 30.0
# A refresh holds its lock while it talks to the token endpoint: wait for longer than that takes.
DEFAULT_REFRESH_TIMEOUT = 90.0
# NIST SP 800-38D §8.3: at most 2^32 encryptions per key with random 96-bit nonces; stay well below.
DEFAULT_MAX_ENCRYPTIONS_PER_KEY = 2**31
CREDENTIAL_STATUSES = ("connected", "needs_reauth", "error")
CONNECTOR_STATUSES = ("never_synced", "connected", "needs_auth", "error")
REGISTRATION_METHODS = ("pre_registered", "cimd", "dcr")
_STATIC_KIND = {s.name: s.credential_kind for s in AUTH_SCHEMES.values() if s.static_secret}
_CONNECTOR_FIELDS = frozenset(
    {
        "name",
        "url",
        "auth_type",
        "header_name",
        "credential_mode",
        "scopes",
        "allow_plain_pkce",
        "prm",
        "as_metadata",
        "issuer",
        "client_id",
        "client_secret",
        "registration_method",
        "status",
        "last_sync_at",
        "last_error",
    }
)
_JSON_FIELDS = frozenset({"prm", "as_metadata"})


class Store:
    """The encrypted DuckDB store. Thread-safe; many processes may open the same file."""

    def __init__(
        self,
        path: str | Path,
        *,
        keyring: Keyring,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        refresh_timeout: float = DEFAULT_REFRESH_TIMEOUT,
        max_encryptions_per_key: int = DEFAULT_MAX_ENCRYPTIONS_PER_KEY,
        snapshots_kept: int = _tools.DEFAULT_SNAPSHOTS_KEPT,
    ) -> None:
        self._keyring = keyring
        self._busy_timeout = busy_timeout
        self._refresh_timeout = refresh_timeout
        self._max_encryptions = max_encryptions_per_key
        self._snapshots_kept = snapshots_kept
        self._local = threading.local()
        self._refresh_locks: dict[CredentialKey, ExclusiveLock] = {}
        self._refresh_locks_mutex = threading.Lock()
        if str(path) == MEMORY:
            self._path: Path | None = None
            self._memory: duckdb.DuckDBPyConnection | None = duckdb.connect(MEMORY)
            self._lock = ExclusiveLock(None)
        else:
            self._path = Path(path).expanduser().absolute()
            self._memory = None
            ensure_private_dir(self._path.parent)
            self._lock = lock_for(self._lock_path(".lock"))
        self._migrate()

    @classmethod
    def open(
        cls, path: str | Path | None = None, *, settings: Settings | None = None, **options: Any
    ) -> Store:
        """The store at `path` (default: `SWITCHBOARD_STORE` or the XDG default), keys from
        `SWITCHBOARD_KEY` or the key file."""
        settings = settings or load_settings()
        return cls(path or settings.store_path, keyring=Keyring.from_settings(settings), **options)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def close(self) -> None:
        """Release the in-memory database (file stores hold nothing open between sessions)."""
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    def __repr__(self) -> str:
        return f"Store({str(self._path) if self._path else MEMORY!r})"

    # --- sessions -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Store]:
        """Hold the store (lock and one connection) for several operations; re-entrant per thread."""
        deadline = time.monotonic() + self._busy_timeout
        with self._lock.hold(self._busy_timeout, self._busy):
            if getattr(self._local, "con", None) is not None:
                yield self
                return
            con = self._connect(deadline)
            self._local.con, self._local.in_transaction = con, False
            try:
                self._keyring.refresh()  # see a key rotation done by another process before encrypting
                yield self
            finally:
                self._local.con = None
                self._disconnect(con)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Several operations in one session and one transaction: one commit for all of them (each
        commit flushes the WAL), and all or nothing if an exception leaves the block."""
        with self._transaction():
            yield self

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.session():
            con = self._local.con
            if self._local.in_transaction:
                yield con
                return
            self._local.in_transaction = True
            try:
                con.begin()
                try:
                    yield con
                except BaseException:
                    con.rollback()
                    raise
                con.commit()
            except duckdb.TransactionException as exc:
                # Only another connection in this process could cause it (we serialize sessions).
                raise ConflictError("a concurrent write to the same row won") from exc
            except duckdb.Error as exc:
                raise StoreError(f"store operation failed: {exc}") from exc
            finally:
                self._local.in_transaction = False
                if self._path is not None:
                    restrict_file(self._wal_path())  # DuckDB creates the WAL with the umask's mode

    def _connect(self, deadline: float) -> duckdb.DuckDBPyConnection:
        if self._path is None:
            if self._memory is None:
                raise StoreError("the in-memory store was closed")
            return self._memory.cursor()
        delay = 0.002
        while True:
            try:
                con = duckdb.connect(str(self._path))
                break
            except duckdb.IOException as exc:
                # Someone outside Switchboard (a DuckDB CLI, a notebook's own connection) holds the file.
                if "Could not set lock" not in str(exc):
                    raise StoreError(f"cannot open the store {self._path}: {exc}") from exc
                if time.monotonic() + delay > deadline:
                    raise self._busy(holder=True) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open the store {self._path}: {exc}") from exc
        restrict_file(self._path)
        # A setting, not connect(config=...): a connection with a different config to an instance
        # already open in this process (say, a notebook's own) would be refused. In Jupyter without
        # ipywidgets DuckDB has already disabled the bar itself and refuses the SET: nothing to do.
        with contextlib.suppress(duckdb.InvalidInputException):
            con.execute("SET enable_progress_bar = false")
        return con

    def _disconnect(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            con.close()  # the last connection of the instance: checkpoints and releases the file
        except duckdb.Error as exc:
            log.warning("closing the store failed: %s", exc)
        if self._path is not None:
            restrict_file(self._wal_path())

    def _busy(self, holder: bool = False) -> StoreBusy:
        who = (
            "another program (not Switchboard) has the file open"
            if holder
            else "another Switchboard process or thread is using it"
        )
        return StoreBusy(
            f"the store {self._path or MEMORY} stayed busy for {self._busy_timeout:g} s: {who}",
            hint="close the other program (e.g. a DuckDB shell on this file) or try again",
        )

    def _lock_path(self, suffix: str) -> Path:
        assert self._path is not None
        return self._path.with_name(self._path.name + suffix)

    def _wal_path(self) -> Path:
        return self._lock_path(".wal")

    # --- migrations -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self.session():
            con = self._local.con
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at DOUBLE NOT NULL)"
            )
            current = self.schema_version()
            if current > LATEST_VERSION:
                raise StoreError(
                    f"the store was written by a newer Switchboard (schema {current}, "
                    f"this one knows up to {LATEST_VERSION})",
                    hint="upgrade Switchboard",
                )
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                with self._transaction() as tx:
                    for statement in migration.statements:
                        tx.execute(statement)
                    tx.execute(
                        "INSERT INTO schema_version VALUES (?, ?, ?)",
                        [migration.version, migration.description, time.time()],
                    )

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run one read-only SELECT (notebooks, ad-hoc analysis) and return a pandas DataFrame.
        Anything else (several statements, writes, COPY, ATTACH) is refused; secrets are ciphertext."""
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise ConfigurationError(f"invalid SQL: {exc}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise ConfigurationError("Store.query runs exactly one SELECT statement")
        with self.session():
            con = self._local.con
            con.begin()
            try:
                return con.execute(sql, list(params or [])).df()
            except duckdb.Error as exc:
                raise StoreError(f"query failed: {exc}") from None
            finally:
                con.rollback()

    def schema_version(self) -> int:
        with self._transaction() as con:
            return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    # --- encryption helpers ---------------------------------------------------------------------

    def _seal(self, con: duckdb.DuckDBPyConnection, plaintext: str, context: SecretContext) -> bytes:
        key_id = self._keyring.active_id
        used = con.execute("SELECT encryptions FROM key_usage WHERE key_id = ?", [key_id]).fetchone()
        if used is not None and used[0] >= self._max_encryptions:
            # Force a rotation before the random-nonce limit; old keys keep decrypting.
            key_id = self._keyring.rotate()
            log.warning("key usage limit reached: rotated the store key to %s", key_id)
        con.execute(
            "INSERT INTO key_usage VALUES (?, 1) ON CONFLICT (key_id) DO UPDATE "
            "SET encryptions = key_usage.encryptions + 1",
            [key_id],
        )
        return self._keyring.encrypt(plaintext, context, key_id=key_id)

    def _open(self, spec: SecretTable, column: str, row: Mapping[str, Any]) -> Secret | None:
        blob = row[column]
        return None if blob is None else self._keyring.decrypt(blob, spec.secret_context(column, row))

    # --- connectors -----------------------------------------------------------------------------

    def create_connector(
        self,
        name: str,
        url: str,
        auth_type: str,
        *,
        credential_mode: str = "shared",
        header_name: str | None = None,
        scopes: Sequence[str] | None = None,
        allow_plain_pkce: bool = False,
        client_id: str | None = None,
        client_secret: str | None = None,
        registration_method: str | None = None,
    ) -> Connector:
        _require(auth_type, AUTH_TYPES, "auth_type")
        _require(credential_mode, CREDENTIAL_MODES, "credential_mode")
        if registration_method is not None:
            _require(registration_method, REGISTRATION_METHODS, "registration_method")
        connector_id = _new_id()
        now = time.time()
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM connectors WHERE name = ?", [name]).fetchone():
                raise ConfigurationError(f"a connector named {name!r} already exists")
            con.execute(
                "INSERT INTO connectors (id, name, url, auth_type, header_name, credential_mode, scopes, "
                "allow_plain_pkce, client_id, registration_method, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    connector_id,
                    name,
                    url,
                    auth_type,
                    header_name,
                    credential_mode,
                    list(scopes) if scopes is not None else None,
                    allow_plain_pkce,
                    client_id,
                    registration_method,
                    now,
                    now,
                ],
            )
            if client_secret is not None:
                self._set_connector_secret(con, connector_id, client_secret)
            return self._connector(con, connector_id)

    def get_connector(self, ref: str) -> Connector:
        """By id or, failing that, by name."""
        with self._transaction() as con:
            return self._connector(con, self._connector_id(con, ref))

    def list_connectors(self) -> list[Connector]:
        with self._transaction() as con:
            return [_connector_from_row(r) for r in _rows(con, _CONNECTOR_SELECT + " ORDER BY c.name")]

    def update_connector(self, ref: str, **changes: Any) -> Connector:
        """Change columns by name; `client_secret` takes the plaintext (None removes it)."""
        unknown = set(changes) - _CONNECTOR_FIELDS
        if unknown:
            raise ConfigurationError(f"unknown connector field(s): {', '.join(sorted(unknown))}")
        for field, allowed in (
            ("auth_type", AUTH_TYPES),
            ("credential_mode", CREDENTIAL_MODES),
            ("status", CONNECTOR_STATUSES),
            ("registration_method", REGISTRATION_METHODS),
        ):
            if changes.get(field) is not None:
                _require(changes[field], allowed, field)
        with self._transaction() as con:
            connector_id = self._connector_id(con, ref)
            if (
                "name" in changes
                and con.execute(
                    "SELECT 1 FROM connectors WHERE name = ? AND id <> ?", [changes["name"], connector_id]
                ).fetchone()
            ):
                raise ConfigurationError(f"a connector named {changes['name']!r} already exists")
            if "client_secret" in changes:
                secret = changes.pop("client_secret")
                if secret is None:
                    con.execute("UPDATE connectors SET client_secret = NULL WHERE id = ?", [connector_id])
                else:
                    self._set_connector_secret(con, connector_id, secret)
            values = {k: _column_value(k, v) for k, v in changes.items()}
            values["updated_at"] = time.time()
            assignments = ", ".join(
                f"{column} = ?" for column in values
            )  # names checked against the allow-list
            con.execute(f"UPDATE connectors SET {assignments} WHERE id = ?", [*values.values(), connector_id])
            if "name" in changes:
                con.execute(
                    "UPDATE current_tools SET connector_name = ? WHERE connector_id = ?",
                    [changes["name"], connector_id],
                )
            return self._connector(con, connector_id)

    def delete_connector(self, ref: str) -> None:
        """Remove the connector with its credentials, pending authorizations and tool snapshots.
        The audit log and auth trace keep their rows (they are history)."""
        with self._transaction() as con:
            connector_id = self._connector_id(con, ref)
            for table in ("credentials", "pending_authorizations", "current_tools"):
                con.execute(f"DELETE FROM {table} WHERE connector_id = ?", [connector_id])
            con.execute(
                "DELETE FROM tools WHERE snapshot_id IN "
                "(SELECT id FROM tool_snapshots WHERE connector_id = ?)",
                [connector_id],
            )
            con.execute("DELETE FROM tool_snapshots WHERE connector_id = ?", [connector_id])
            con.execute("DELETE FROM connectors WHERE id = ?", [connector_id])

    def connector_client_secret(self, ref: str) -> Secret | None:
        """The pre-registered client secret; `CredentialUnavailable` when it cannot be decrypted."""
        with self._transaction() as con:
            connector_id = self._connector_id(con, ref)
            row = _rows(con, "SELECT id, client_secret FROM connectors WHERE id = ?", [connector_id])[0]
            return self._open(CONNECTOR_SECRETS, "client_secret", row)

    def _set_connector_secret(self, con: duckdb.DuckDBPyConnection, connector_id: str, secret: str) -> None:
        blob = self._seal(
            con, secret, CONNECTOR_SECRETS.secret_context("client_secret", {"id": connector_id})
        )
        con.execute("UPDATE connectors SET client_secret = ? WHERE id = ?", [blob, connector_id])

    def _connector_id(self, con: duckdb.DuckDBPyConnection, ref: str) -> str:
        row = con.execute(
            "SELECT id FROM connectors WHERE id = ? UNION ALL "
            "SELECT id FROM connectors WHERE name = ? LIMIT 1",
            [ref, ref],
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no connector {ref!r}", hint="list connectors to see their names")
        return row[0]

    def _connector(self, con: duckdb.DuckDBPyConnection, connector_id: str) -> Connector:
        return _connector_from_row(_rows(con, _CONNECTOR_SELECT + " WHERE c.id = ?", [connector_id])[0])

    # --- agents ---------------------------------------------------------------------------------

    def create_agent(self, name: str, description: str = "") -> AgentInfo:
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM agents WHERE name = ?", [name]).fetchone():
                raise ConfigurationError(f"an agent named {name!r} already exists")
            agent = AgentInfo(id=_new_id(), name=name, description=description, created_at=time.time())
            con.execute(
                "INSERT INTO agents VALUES (?, ?, ?, ?)",
                [agent.id, agent.name, agent.description, agent.created_at],
            )
            return agent

    def get_agent(self, ref: str) -> AgentInfo:
        """By id or, failing that, by name."""
        with self._transaction() as con:
            return self._agent(con, ref)

    def list_agents(self) -> list[AgentInfo]:
        with self._transaction() as con:
            return [AgentInfo(**r) for r in _rows(con, "SELECT * FROM agents ORDER BY name")]

    def delete_agent(self, ref: str) -> None:
        """Remove the agent with its credentials, pending authorizations and per-agent tool lists."""
        with self._transaction() as con:
            agent_id = self._agent(con, ref).id
            for table in ("credentials", "pending_authorizations", "current_tools"):
                con.execute(f"DELETE FROM {table} WHERE agent_id = ?", [agent_id])
            con.execute(
                "DELETE FROM tools WHERE snapshot_id IN (SELECT id FROM tool_snapshots WHERE agent_id = ?)",
                [agent_id],
            )
            con.execute("DELETE FROM tool_snapshots WHERE agent_id = ?", [agent_id])
            con.execute("DELETE FROM agents WHERE id = ?", [agent_id])

    @staticmethod
    def _agent(con: duckdb.DuckDBPyConnection, ref: str) -> AgentInfo:
        rows = _rows(
            con,
            "SELECT * FROM agents WHERE id = ? UNION ALL SELECT * FROM agents WHERE name = ? LIMIT 1",
            [ref, ref],
        )
        if not rows:
            raise NotFoundError(f"no agent {ref!r}", hint="list agents to see their names")
        return AgentInfo(**rows[0])

    # --- credentials ----------------------------------------------------------------------------

    def resolve_credential(self, connector: str, agent: str | None) -> CredentialKey:
        """Which credential a call to `connector` as `agent` uses. A shared connector always uses its
        shared credential; a per_agent one only the agent's own — never another agent's, never the
        shared one."""
        with self._transaction() as con:
            connector_id = self._connector_id(con, connector)
            mode = con.execute(
                "SELECT credential_mode FROM connectors WHERE id = ?", [connector_id]
            ).fetchone()[0]
            if mode == "shared":
                return CredentialKey(connector_id, "")
            if agent is None:
                raise ConfigurationError(f"connector {connector!r} uses per-agent credentials: name an agent")
            return CredentialKey(connector_id, self._agent(con, agent).id)

    def save_secret(self, key: CredentialKey, secret: str, *, identity: str | None = None) -> CredentialInfo:
        """Store a bearer token or API key (by the connector's auth type), replacing what was there."""
        if not secret:
            raise ConfigurationError("the secret is empty")
        with self._transaction() as con:
            auth_type = self._auth_type(con, key.connector_id)
            kind = _STATIC_KIND.get(auth_type or "")
            if kind is None:
                raise ConfigurationError(
                    f"connector {key.connector_id!r} uses {auth_type} authentication, "
                    "which takes no static secret"
                )
            now = time.time()
            row = {
                "connector_id": key.connector_id,
                "agent_id": key.agent_id,
                "issuer": "",
                "client_id": "",
                "resource": "",
            }
            blob = self._seal(con, secret, CREDENTIAL_SECRETS.secret_context("secret", row))
            con.execute(
                "INSERT INTO credentials (connector_id, agent_id, kind, secret, identity, fingerprint, version, "
                "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, 'connected', ?, ?) "
                "ON CONFLICT (connector_id, agent_id) DO UPDATE SET kind = excluded.kind, secret = excluded.secret, "
                "access_token = NULL, refresh_token = NULL, token_type = NULL, expires_at = NULL, issued_at = NULL, "
                "scopes = [], issuer = '', client_id = '', resource = '', token_endpoint = '', "
                "identity = excluded.identity, fingerprint = excluded.fingerprint, "
                "version = credentials.version + 1, status = 'connected', status_reason = NULL, "
                "updated_at = excluded.updated_at",
                [key.connector_id, key.agent_id, kind, blob, identity, fingerprint(secret), now, now],
            )
            return self._credential_info(con, key)  # type: ignore[return-value]

    def load_secret(self, key: CredentialKey) -> Secret:
        """The bearer token or API key. `NotFoundError` when there is none; `CredentialUnavailable`
        (and the credential marked needs_reauth) when it cannot be decrypted."""
        try:
            with self._transaction() as con:
                rows = _rows(
                    con,
                    "SELECT * FROM credentials WHERE connector_id = ? AND agent_id = ? "
                    "AND kind IN ('bearer', 'api_key')",
                    [key.connector_id, key.agent_id],
                )
                if not rows:
                    raise NotFoundError("no stored secret for this credential", hint="enter the secret")
                return self._open(CREDENTIAL_SECRETS, "secret", rows[0])  # type: ignore[return-value]
        except CredentialUnavailable as exc:
            self._credential_unreadable(key, exc)
            raise

    def credential_stamp(self, key: CredentialKey) -> tuple | None:
        """Changes when the credential is replaced or removed (a new key, a new authorization after a
        disconnect) but not on a token refresh: lets a process notice another process's change."""
        with self._transaction() as con:
            row = con.execute(
                "SELECT kind, created_at, CASE WHEN kind IN ('bearer', 'api_key') THEN fingerprint END "
                "FROM credentials WHERE connector_id = ? AND agent_id = ?",
                [key.connector_id, key.agent_id],
            ).fetchone()
        return tuple(row) if row else None

    def credential(self, key: CredentialKey) -> CredentialInfo | None:
        """Status, expiry and fingerprint of one credential (never its secret)."""
        with self._transaction() as con:
            return self._credential_info(con, key)

    def credential_health(
        self, connector: str | None = None, agent: str | None = None
    ) -> list[CredentialInfo]:
        """Every stored credential's health: status, expiry, last refresh, last 401/403."""
        with self._transaction() as con:
            where, params = [], []
            if connector is not None:
                where.append("cr.connector_id = ?")
                params.append(self._connector_id(con, connector))
            if agent is not None:
                where.append("cr.agent_id = ?")
                params.append(self._agent(con, agent).id)
            sql = _CREDENTIAL_SELECT + (" WHERE " + " AND ".join(where) if where else "")
            return [
                _credential_from_row(r)
                for r in _rows(con, sql + " ORDER BY c.name, a.name NULLS FIRST", params)
            ]

    def delete_credentials(self, connector: str) -> int:
        """Remove every credential of a connector (shared and per agent); returns how many."""
        with self._transaction() as con:
            return len(
                con.execute(
                    "DELETE FROM credentials WHERE connector_id = ? RETURNING 1",
                    [self._connector_id(con, connector)],
                ).fetchall()
            )

    def delete_credential(self, key: CredentialKey) -> bool:
        with self._transaction() as con:
            return bool(
                con.execute(
                    "DELETE FROM credentials WHERE connector_id = ? AND agent_id = ? RETURNING 1",
                    [key.connector_id, key.agent_id],
                ).fetchall()
            )

    def set_credential_status(self, key: CredentialKey, status: str, reason: str | None = None) -> None:
        _require(status, CREDENTIAL_STATUSES, "status")
        with self._transaction() as con:
            con.execute(
                "UPDATE credentials SET status = ?, status_reason = ?, updated_at = ? "
                "WHERE connector_id = ? AND agent_id = ?",
                [status, reason, time.time(), key.connector_id, key.agent_id],
            )

    def set_credential_identity(self, key: CredentialKey, identity: str | None) -> None:
        """Who the credential authenticates as, when the server tells (shown in the dashboard)."""
        with self._transaction() as con:
            con.execute(
                "UPDATE credentials SET identity = ? WHERE connector_id = ? AND agent_id = ?",
                [identity, key.connector_id, key.agent_id],
            )

    def record_rejection(self, key: CredentialKey, http_status: int) -> None:
        """Remember when the server last answered 401 or 403 to this credential."""
        column = {401: "last_401_at", 403: "last_403_at"}.get(http_status)
        if column is None:
            raise ConfigurationError(f"only 401 and 403 are recorded, not {http_status}")
        with self._transaction() as con:
            con.execute(
                f"UPDATE credentials SET {column} = ? WHERE connector_id = ? AND agent_id = ?",
                [time.time(), key.connector_id, key.agent_id],
            )

    def oauth_storage(self) -> StoreOAuthStorage:
        """The `OAuthStorage` the OAuth code uses over this store."""
        return StoreOAuthStorage(self)

    @contextlib.contextmanager
    def refresh_lock(self, key: CredentialKey) -> Iterator[None]:
        """Exclusive per credential across threads and processes (see `OAuthStorage.refresh_lock`)."""
        if self._lock.held_by_me:
            # Lock order is refresh lock, then store lock; the reverse could deadlock two processes.
            raise StoreError("refresh_lock taken inside a store session", hint="take it before the session")
        with self._refresh_lock(key).hold(
            self._refresh_timeout,
            lambda: StoreBusy(
                "another worker has been refreshing this credential for too long", hint="try again"
            ),
        ):
            yield

    def _refresh_lock(self, key: CredentialKey) -> ExclusiveLock:
        if self._path is None:
            with self._refresh_locks_mutex:
                return self._refresh_locks.setdefault(key, ExclusiveLock(None))
        directory = self._lock_path(".locks")
        ensure_private_dir(directory)
        name = hashlib.sha256(f"{key.connector_id}\0{key.agent_id}".encode()).hexdigest()[:32]
        return lock_for(directory / f"{name}.lock")

    def _auth_type(self, con: duckdb.DuckDBPyConnection, connector_id: str) -> str | None:
        row = con.execute("SELECT auth_type FROM connectors WHERE id = ?", [connector_id]).fetchone()
        return row[0] if row else None

    def _credential_info(self, con: duckdb.DuckDBPyConnection, key: CredentialKey) -> CredentialInfo | None:
        rows = _rows(
            con,
            _CREDENTIAL_SELECT + " WHERE cr.connector_id = ? AND cr.agent_id = ?",
            [key.connector_id, key.agent_id],
        )
        return _credential_from_row(rows[0]) if rows else None

    def _credential_unreadable(self, key: CredentialKey, exc: CredentialUnavailable) -> None:
        # A security event: the row was tampered with, moved, or its key is gone. Fail closed and
        # make the operator re-authorize; never try other rows or keys.
        log.warning(
            "credential %s/%s is unreadable: %s", key.connector_id, key.agent_id or "(shared)", exc.message
        )
        self.set_credential_status(key, "needs_reauth", exc.message)

    # --- tools ----------------------------------------------------------------------------------

    def record_snapshot(
        self,
        connector: str,
        tools: Sequence[Mapping[str, Any]],
        *,
        agent: str | None = None,
        synced_at: float | None = None,
    ) -> SnapshotResult:
        """Record the tools a sync returned (wire definitions, as from tools/list). `agent` only when
        the list depends on who asks; otherwise it is the connector's list. Duplicate names: first wins."""
        result = self.record_snapshots([(connector, tools, agent)], synced_at=synced_at)[0]
        if isinstance(result, ConfigurationError):
            raise result
        return result

    def record_snapshots(
        self,
        syncs: Sequence[tuple[str, Sequence[Mapping[str, Any]], str | None]],
        *,
        synced_at: float | None = None,
    ) -> list[SnapshotResult | ConfigurationError]:
        """Record several syncs' tool lists — (connector, tools, agent or None) each — in one
        transaction with a fixed number of statements. A list the store refuses (a tool without a
        name, an unknown connector or agent) comes back as its error; the others are recorded."""
        outcomes: list[Any] = []
        for _, tools, _ in syncs:  # JSON and hashing before taking the lock
            try:
                outcomes.append(_tools.prepare(tools))
            except ConfigurationError as exc:
                outcomes.append(exc)
        now = synced_at or time.time()
        with self._transaction() as con:
            connector_ids = self._ids(con, "connectors", [c for c, _, _ in syncs])
            agent_ids = self._ids(con, "agents", [a for _, _, a in syncs if a is not None])
            batch, positions = [], []
            for position, (connector, _, agent) in enumerate(syncs):
                if isinstance(outcomes[position], ConfigurationError):
                    continue
                if connector not in connector_ids:
                    outcomes[position] = NotFoundError(f"no connector {connector!r}")
                elif agent is not None and agent not in agent_ids:
                    outcomes[position] = NotFoundError(f"no agent {agent!r}")
                else:
                    batch.append(
                        (
                            connector_ids[connector],
                            agent_ids[agent] if agent is not None else "",
                            outcomes[position],
                        )
                    )
                    positions.append(position)
            for position, result in zip(
                positions, _tools.record_many(con, batch, now, keep=self._snapshots_kept), strict=True
            ):
                outcomes[position] = result
            if batch:
                con.execute(
                    "UPDATE connectors SET last_sync_at = ?, status = 'connected', last_error = NULL, "
                    "updated_at = ? WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                    [now, time.time(), sorted({connector_id for connector_id, _, _ in batch})],
                )
        return outcomes

    @staticmethod
    def _ids(con: duckdb.DuckDBPyConnection, table: str, refs: Sequence[str]) -> dict[str, str]:
        """ref (id or name) -> id for the rows of `table` (connectors or agents) that exist."""
        if not refs:
            return {}
        found: dict[str, str] = {}
        for row_id, name in con.execute(
            f"SELECT id, name FROM {table} WHERE id IN (SELECT unnest(?::VARCHAR[])) "
            "OR name IN (SELECT unnest(?::VARCHAR[]))",
            [list(refs), list(refs)],
        ).fetchall():
            found.setdefault(name, row_id)
            found[row_id] = row_id  # an id wins over another row's equal name, as in _connector_id
        return found

    def tool_page(
        self,
        *,
        connector: str | None = None,
        agent: str | None = None,
        search: str | None = None,
        read_only: bool | None = None,
        destructive: bool | None = None,
        drift: bool | None = None,
        sort: str = "connector",
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> ToolPage:
        """One page of the current tool inventory and the total matching. With `agent`: what that agent
        sees (its own list where a connector has one, else the connector's). `search`: case-insensitive
        substring of name, title or description. Sort keys: `core.store.tools.SORT_KEYS`."""
        with self._transaction() as con:
            connector_id = self._connector_id(con, connector) if connector is not None else None
            agent_id = self._agent(con, agent).id if agent is not None else None
            return _tools.page(
                con,
                connector_id=connector_id,
                agent_id=agent_id,
                search=search,
                read_only=read_only,
                destructive=destructive,
                drift=drift,
                sort=sort,
                descending=descending,
                offset=offset,
                limit=limit,
            )

    def current_tools(self, connector: str, agent: str | None = None) -> list[dict[str, Any]]:
        """The full wire definitions of the tools `agent` (or anyone) sees on `connector`, by name."""
        with self._transaction() as con:
            return _tools.definitions(con, *self._tool_owner(con, connector, agent))

    def tool_definition(self, connector: str, name: str, agent: str | None = None) -> dict[str, Any]:
        with self._transaction() as con:
            found = _tools.definitions(con, *self._tool_owner(con, connector, agent), name=name)
        if not found:
            raise NotFoundError(f"no tool {name!r} on connector {connector!r}", hint="sync the connector")
        return found[0]

    def drift(self, connector: str, agent: str | None = None) -> ToolDrift:
        """Tools added, removed or changed (and which fields) between the last two distinct lists."""
        with self._transaction() as con:
            return _tools.drift(con, *self._tool_owner(con, connector, agent))

    def _tool_owner(
        self, con: duckdb.DuckDBPyConnection, connector: str, agent: str | None
    ) -> tuple[str, str]:
        connector_id = self._connector_id(con, connector)
        agent_id = self._agent(con, agent).id if agent is not None else ""
        return connector_id, _tools.list_owner(con, connector_id, agent_id)

    # --- audit and auth trace -------------------------------------------------------------------

    def record_call(
        self,
        *,
        connector_id: str,
        tool: str,
        status: str,
        agent_id: str = "",
        operator: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        latency_ms: float | None = None,
        credential_fingerprint: str | None = None,
        error: str | None = None,
    ) -> int:
        """Append a tool call to the audit log; returns its id. Arguments under secret-looking keys
        are redacted here too; the credential appears only as its 8-hex fingerprint."""
        _require(status, ("ok", "tool_error", "error"), "status")
        if credential_fingerprint is not None and not re.fullmatch(r"[0-9a-f]{8}", credential_fingerprint):
            raise ConfigurationError(
                "credential_fingerprint must be 8 lowercase hex digits (see crypto.fingerprint)"
            )
        with self._transaction() as con:
            return con.execute(
                "INSERT INTO audit_log (called_at, operator, agent_id, connector_id, tool, arguments, status, latency_ms, "
                "credential_fingerprint, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [
                    time.time(),
                    operator,
                    agent_id,
                    connector_id,
                    tool,
                    None if arguments is None else json.dumps(redact_arguments(arguments), default=str),
                    status,
                    latency_ms,
                    credential_fingerprint,
                    error,
                ],
            ).fetchone()[0]

    def audit(
        self, *, connector: str | None = None, agent: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Newest first, with connector and agent names."""
        with self._transaction() as con:
            where, params = [], []
            if connector is not None:
                where.append("l.connector_id = ?")
                params.append(self._connector_id(con, connector))
            if agent is not None:
                where.append("l.agent_id = ?")
                params.append(self._agent(con, agent).id)
            rows = _rows(
                con,
                "SELECT l.*, c.name AS connector, a.name AS agent FROM audit_log l "
                "LEFT JOIN connectors c ON c.id = l.connector_id "
                "LEFT JOIN agents a ON a.id = l.agent_id"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY l.id DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
        for row in rows:
            row["arguments"] = json.loads(row["arguments"]) if row["arguments"] is not None else None
        return rows

    def record_auth_step(self, key: CredentialKey, attempt_id: str, event: TraceEvent) -> None:
        """Append one step (`core.oauth.trace.TraceEvent`) of an authorization attempt; the URL is
        stored without userinfo, query or fragment. Several steps: wrap the calls in `session()`."""
        with self._transaction() as con:
            con.execute(
                "INSERT INTO auth_trace (attempt_id, connector_id, agent_id, step, method, url, http_status, "
                "duration_ms, detail, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    attempt_id,
                    key.connector_id,
                    key.agent_id,
                    event.step,
                    event.method,
                    trace_url(event.url),
                    event.status,
                    event.duration_ms,
                    event.detail,
                    time.time(),
                ],
            )

    def auth_trace(self, key: CredentialKey, attempt_id: str | None = None) -> list[dict[str, Any]]:
        """The steps of one attempt (default: the latest) in order."""
        with self._transaction() as con:
            if attempt_id is None:
                row = con.execute(
                    "SELECT attempt_id FROM auth_trace WHERE connector_id = ? AND agent_id = ? "
                    "ORDER BY id DESC LIMIT 1",
                    [key.connector_id, key.agent_id],
                ).fetchone()
                if row is None:
                    return []
                attempt_id = row[0]
            return _rows(con, "SELECT * FROM auth_trace WHERE attempt_id = ? ORDER BY id", [attempt_id])

    # --- keys -----------------------------------------------------------------------------------

    def key_usage(self) -> dict[str, int]:
        """How many stored secrets each key id encrypts (ids not in the keyring included)."""
        counts: dict[str, int] = {}
        with self._transaction() as con:
            for spec in SECRET_TABLES:
                for row in _rows(con, f"SELECT {', '.join(spec.columns)} FROM {spec.table}"):
                    for blob in row.values():
                        if blob is not None:
                            key_id = key_id_of(blob) or "<malformed>"
                            counts[key_id] = counts.get(key_id, 0) + 1
        return counts

    def rotate_key(self, *, batch_size: int = 100) -> RotationReport:
        """New active key, every secret re-encrypted under it, old keys retired once unused. The store
        stays usable throughout (short batches); safe to re-run after an interruption."""
        with self.session():
            self._keyring.rotate()
        return self.reencrypt(batch_size=batch_size)

    def reencrypt(self, *, batch_size: int = 100) -> RotationReport:
        """Re-encrypt secrets not under the active key, then retire keys nothing uses any more.

        Each batch is one short session, so other processes keep working between batches. A row is
        rewritten only if its version (credentials) and ciphertexts are still those just read, and the
        version is not bumped: a re-encryption changes no token, so a refresh that read the row
        before it still commits its compare-and-swap (no lost update, C-11)."""
        reencrypted = unreadable = 0
        for spec in SECRET_TABLES:
            pending = self._rows_to_reencrypt(spec)
            for start in range(0, len(pending), batch_size):
                done, failed = self._reencrypt_batch(spec, pending[start : start + batch_size])
                reencrypted += done
                unreadable += failed
        retired, still_used = self.retire_unused_keys()
        return RotationReport(self._keyring.active_id, reencrypted, unreadable, retired, still_used)

    def retire_unused_keys(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Drop non-active keys that no stored secret uses; returns (retired, still used).

        Runs inside one session: every writer encrypts under the active key it re-reads at the start
        of its own session, so nothing can start using a key between this count and its removal."""
        with self.session():
            used = self.key_usage()
            active = self._keyring.active_id
            old = [k for k in self._keyring.key_ids if k != active]
            retired = self._keyring.retire(k for k in old if k not in used) if self._keyring.editable else ()
            return retired, tuple(k for k in old if k in used)

    def _rows_to_reencrypt(self, spec: SecretTable) -> list[tuple[Any, ...]]:
        active = self._keyring.active_id
        with self._transaction() as con:
            rows = _rows(con, f"SELECT {', '.join(spec.key + spec.columns)} FROM {spec.table}")
        return [
            tuple(r[k] for k in spec.key)
            for r in rows
            if any(r[c] is not None and key_id_of(r[c]) != active for c in spec.columns)
        ]

    def _reencrypt_batch(self, spec: SecretTable, keys: list[tuple[Any, ...]]) -> tuple[int, int]:
        done = failed = 0
        unreadable: list[tuple[CredentialKey, CredentialUnavailable]] = []
        match = " AND ".join(f"{k} = ?" for k in spec.key)
        with self._transaction() as con:
            active = self._keyring.active_id
            for key in keys:
                rows = _rows(con, f"SELECT * FROM {spec.table} WHERE {match}", list(key))
                if not rows:
                    continue  # deleted meanwhile
                row = rows[0]
                stale = [c for c in spec.columns if row[c] is not None and key_id_of(row[c]) != active]
                if not stale:
                    continue  # rewritten meanwhile, under the active key
                try:
                    blobs = {
                        c: self._seal(
                            con,
                            self._open(spec, c, row).reveal(),  # type: ignore[union-attr]
                            spec.secret_context(c, row),
                        )
                        for c in stale
                    }
                except CredentialUnavailable as exc:
                    failed += 1
                    if spec is CREDENTIAL_SECRETS:
                        unreadable.append((CredentialKey(row["connector_id"], row["agent_id"]), exc))
                    continue
                guard = " AND ".join(f"{c} = ?" for c in stale)
                if spec.versioned:
                    guard += " AND version = ?"
                updated = con.execute(
                    f"UPDATE {spec.table} SET {', '.join(f'{c} = ?' for c in stale)} WHERE {match} AND {guard} "
                    "RETURNING 1",
                    [
                        *blobs.values(),
                        *key,
                        *(row[c] for c in stale),
                        *([row["version"]] if spec.versioned else []),
                    ],
                ).fetchall()
                done += len(stale) if updated else 0
        for credential, exc in unreadable:
            self._credential_unreadable(credential, exc)
        return done, failed


# --- row mapping ----------------------------------------------------------------------------------

_CONNECTOR_SELECT = (
    # Joins with pre-aggregated subqueries: DuckDB plans these far faster than correlated subqueries.
    "SELECT c.* EXCLUDE (client_secret), c.client_secret IS NOT NULL AS has_client_secret, "
    "coalesce(t.tool_count, 0)::INTEGER AS tool_count, cr.connector_id IS NOT NULL AS has_shared_credential "
    "FROM connectors c "
    "LEFT JOIN (SELECT connector_id, max(tool_count) AS tool_count FROM tool_snapshots WHERE is_current "
    "GROUP BY connector_id) t ON t.connector_id = c.id "
    "LEFT JOIN (SELECT connector_id FROM credentials WHERE agent_id = '') cr ON cr.connector_id = c.id"
)

_CREDENTIAL_SELECT = (
    "SELECT c.name AS connector, a.name AS agent, cr.kind, cr.status, cr.status_reason AS reason, "
    "cr.fingerprint, cr.expires_at, cr.scopes, cr.identity, cr.last_refresh_at, cr.last_401_at, cr.last_403_at "
    "FROM credentials cr LEFT JOIN connectors c ON c.id = cr.connector_id "
    "LEFT JOIN agents a ON a.id = cr.agent_id AND cr.agent_id <> ''"
)


def _connector_from_row(row: dict[str, Any]) -> Connector:
    for name in _JSON_FIELDS:
        row[name] = json.loads(row[name]) if row[name] is not None else None
    row["scopes"] = tuple(row["scopes"]) if row["scopes"] is not None else None
    return Connector(**row)


def _credential_from_row(row: dict[str, Any]) -> CredentialInfo:
    row["scopes"] = tuple(row["scopes"] or ())
    row["connector"] = row["connector"] or "<deleted connector>"
    return CredentialInfo(**row)


def _column_value(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return None if value is None else json.dumps(value, sort_keys=True)
    if name == "scopes":
        return None if value is None else list(value)
    return value


def _require(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ConfigurationError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def _new_id() -> str:
    return secrets.token_hex(8)
