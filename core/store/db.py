"""`Store`: Switchboard's state, in one DuckDB file or one PostgreSQL database.

The store is a small kernel and one repository per aggregate:

- kernel (this module): the engine (`engine.py`; DuckDB or PostgreSQL by the location), sessions
  and transactions, migrations applied on open under a lock, encryption of secret columns
  (`crypto.py`), the read-only query sandbox, the per-credential refresh lock;
- repositories, each an attribute: `connectors`, `agents`, `credentials` (static secrets, OAuth
  tokens, health), `registrations` (OAuth clients), `pending` (authorizations in flight), `tools`
  (snapshots, inventory pages, drift), `audit`, `auth_trace`, `messages` (flash messages), `keys`
  (usage and rotation), `operators` (who may sign in with `--auth basic`), and the agent gateway's
  `agent_tokens`, `policies`, `pinning` (tool approvals) and `gateway` (change counter, heartbeats,
  an agent's catalog). Repositories take ids
  (`CredentialKey` for credentials); a name is resolved once, at the edge (the services, the access
  service), with `connectors.named(name)` / `agents.named(name)`.

Sessions. `with store.session():` holds one connection for several operations (each still its own
transaction); `with store.transaction():` makes them one transaction. Both are per thread and
re-entrant. On DuckDB a session also holds the store lock, so keep sessions short and never hold one
while waiting on the network; on PostgreSQL sessions run side by side and rows lock themselves.
Compare-and-swap guards what locks cannot: an OAuth refresh reads a credential, spends seconds at
the token endpoint, then writes with `WHERE version = ?`; the loser gets `ConflictError`.
Read-refresh-write runs under `refresh_lock(key)`, taken *before* and never inside a session.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from core.config import Settings, load_settings
from core.errors import ConfigurationError, StoreBusy, StoreError
from core.oauth.storage import CredentialKey
from core.store.crypto import Keyring, Secret, SecretContext
from core.store.engine import Engine, Tx, open_engine
from core.store.retention import Retention, RetentionPolicy
from core.store.schema import LATEST_VERSION, MIGRATIONS, SCHEMA_VERSION_TABLE, SecretTable

if TYPE_CHECKING:
    from core.store.repositories import (
        AgentRepository,
        AgentTokenRepository,
        AuditRepository,
        AuthTraceRepository,
        ConnectorRepository,
        CredentialRepository,
        GatewayRepository,
        KeyRepository,
        MessageRepository,
        OperatorRepository,
        OverviewRepository,
        PendingRepository,
        PinningRepository,
        PolicyRepository,
        RegistrationRepository,
        ToolRepository,
    )

log = logging.getLogger(__name__)

MEMORY = ":memory:"
DEFAULT_BUSY_TIMEOUT = 30.0
# A refresh holds its lock while it talks to the token endpoint: wait for longer than that takes.
DEFAULT_REFRESH_TIMEOUT = 90.0
# NIST SP 800-38D §8.3: at most 2^32 encryptions per key with random 96-bit nonces; stay well below.
DEFAULT_MAX_ENCRYPTIONS_PER_KEY = 2**31
DEFAULT_SNAPSHOTS_KEPT = 10


class Store:
    """The encrypted store. Thread-safe; many processes (and, on PostgreSQL, hosts) may share it."""

    def __init__(
        self,
        location: str | Path,
        *,
        keyring: Keyring,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        refresh_timeout: float = DEFAULT_REFRESH_TIMEOUT,
        max_encryptions_per_key: int = DEFAULT_MAX_ENCRYPTIONS_PER_KEY,
        snapshots_kept: int = DEFAULT_SNAPSHOTS_KEPT,
        retention: RetentionPolicy | None = None,
        migrate_on_open: bool = True,
    ) -> None:
        """`migrate_on_open=False` leaves the schema check (and any migration) to the first session:
        a process that runs one command then opens the DuckDB file once, not twice (~30 ms of CPU,
        a tenth of a CLI command). A store too new is then refused by that session, before it reads
        or writes anything."""
        self._keyring = keyring
        self._busy_timeout = busy_timeout
        self._refresh_timeout = refresh_timeout
        self._max_encryptions = max_encryptions_per_key
        self._local = threading.local()
        self.engine: Engine = open_engine(
            location, busy_timeout=busy_timeout, refresh_timeout=refresh_timeout
        )
        self._snapshots_kept = snapshots_kept
        self.retention = Retention(self, retention or RetentionPolicy.from_env())
        self._schema_checked = False
        if migrate_on_open:
            try:
                with self.session():  # the first session checks the schema (see `session`)
                    pass
            except BaseException:
                self.engine.close()
                raise

    @classmethod
    def open(
        cls, location: str | Path | None = None, *, settings: Settings | None = None, **options: Any
    ) -> Store:
        """The store at `location` (a DuckDB path or a postgresql:// URL; default: `SWITCHBOARD_STORE`
        or the XDG default path), keys from `SWITCHBOARD_KEY` or the key file."""
        settings = settings or load_settings()
        location = location or settings.store_url or settings.store_path
        return cls(location, keyring=Keyring.from_settings(settings), **options)

    @property
    def path(self) -> Path | None:
        """The DuckDB file (None for PostgreSQL and in-memory stores)."""
        return getattr(self.engine, "path", None)

    @property
    def location(self) -> str:
        """Where the store is, for messages: a path, or the URL without its password."""
        return self.engine.location

    @property
    def keyring(self) -> Keyring:
        return self._keyring

    def close(self) -> None:
        """Release the engine's resources (the connection pool, an in-memory database)."""
        self.engine.close()

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    # --- repositories ---------------------------------------------------------------------------
    # Each is built, and its module imported, on first use: a command that lists connectors loads
    # the connectors' repository, not the gateway's or the tool history's. Repositories hold no
    # state beyond the store, so two threads building one at once is harmless.

    @functools.cached_property
    def connectors(self) -> ConnectorRepository:
        from core.store.repositories.connectors import ConnectorRepository

        return ConnectorRepository(self)

    @functools.cached_property
    def agents(self) -> AgentRepository:
        from core.store.repositories.agents import AgentRepository

        return AgentRepository(self)

    @functools.cached_property
    def credentials(self) -> CredentialRepository:
        from core.store.repositories.credentials import CredentialRepository

        return CredentialRepository(self)

    @functools.cached_property
    def registrations(self) -> RegistrationRepository:
        from core.store.repositories.registrations import RegistrationRepository

        return RegistrationRepository(self)

    @functools.cached_property
    def pending(self) -> PendingRepository:
        from core.store.repositories.pending import PendingRepository

        return PendingRepository(self)

    @functools.cached_property
    def tools(self) -> ToolRepository:
        from core.store.repositories.tools import ToolRepository

        return ToolRepository(self, snapshots_kept=self._snapshots_kept)

    @functools.cached_property
    def audit(self) -> AuditRepository:
        from core.store.repositories.history import AuditRepository

        return AuditRepository(self)

    @functools.cached_property
    def auth_trace(self) -> AuthTraceRepository:
        from core.store.repositories.history import AuthTraceRepository

        return AuthTraceRepository(self)

    @functools.cached_property
    def messages(self) -> MessageRepository:
        from core.store.repositories.messages import MessageRepository

        return MessageRepository(self)

    @functools.cached_property
    def operators(self) -> OperatorRepository:
        from core.store.repositories.operators import OperatorRepository

        return OperatorRepository(self)

    @functools.cached_property
    def keys(self) -> KeyRepository:
        from core.store.repositories.keys import KeyRepository

        return KeyRepository(self)

    @functools.cached_property
    def agent_tokens(self) -> AgentTokenRepository:
        from core.store.repositories.access import AgentTokenRepository

        return AgentTokenRepository(self)

    @functools.cached_property
    def policies(self) -> PolicyRepository:
        from core.store.repositories.access import PolicyRepository

        return PolicyRepository(self)

    @functools.cached_property
    def pinning(self) -> PinningRepository:
        from core.store.repositories.pinning import PinningRepository

        return PinningRepository(self)

    @functools.cached_property
    def gateway(self) -> GatewayRepository:
        from core.store.repositories.gateway import GatewayRepository

        return GatewayRepository(self)

    @functools.cached_property
    def overview(self) -> OverviewRepository:
        from core.store.repositories.overview import OverviewRepository

        return OverviewRepository(self)

    # --- sessions and transactions --------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Store]:
        """Hold one connection (and on DuckDB the store lock) for several operations; re-entrant."""
        deadline = time.monotonic() + self._busy_timeout
        with self.engine.session_lock.hold(self._busy_timeout, self._busy):
            if getattr(self._local, "con", None) is not None:
                yield self
                return
            con = self.engine.connect(deadline)
            self._local.con, self._local.in_transaction = con, False
            failed = True
            try:
                self._keyring.refresh()  # see a key rotation done by another process before encrypting
                if not self._schema_checked:
                    self._migrate()
                yield self
                failed = False
            finally:
                self._local.con = None
                self.engine.disconnect(con, failed=failed)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Store]:
        """Several operations in one session and one transaction: one commit for all of them, and
        all or nothing if an exception leaves the block."""
        with self.tx():
            yield self

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """The current transaction (a new one unless this thread is already inside one)."""
        with self.session():
            con = self._local.con
            if self._local.in_transaction:
                yield Tx(con, self.engine)
                return
            self._local.in_transaction = True
            try:
                with self.engine.errors():
                    self.engine.begin(con)
                    try:
                        yield Tx(con, self.engine)
                    except BaseException:
                        self.engine.rollback(con)
                        raise
                    self.engine.commit(con)
            finally:
                self._local.in_transaction = False
                self.engine.after_transaction()

    def _busy(self) -> StoreBusy:
        return StoreBusy(
            f"the store {self.location} stayed busy for {self._busy_timeout:g} s: "
            "another Switchboard process or thread is using it",
            hint="try again",
        )

    # --- migrations -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Apply the migrations this store lacks, in order, each in its own transaction, under a
        lock (a named lock on PostgreSQL, the store lock on DuckDB) so concurrent first runs apply
        each step once. A store written by a newer Switchboard is refused, and nothing is written.
        Runs in the first session of this `Store` (see `session`), on that session's connection."""
        current = self._schema_version_if_any()
        if current > LATEST_VERSION:
            raise self._too_new(current)
        if current == LATEST_VERSION:
            self._schema_checked = True
            return
        with self.tx() as tx:
            tx.lock("migrations")
            tx.execute(self._render(SCHEMA_VERSION_TABLE))
        for migration in MIGRATIONS:
            with self.tx() as tx:
                tx.lock("migrations")
                applied = tx.scalar("SELECT coalesce(max(version), 0) FROM schema_version")
                if applied > LATEST_VERSION:
                    raise self._too_new(applied)
                if migration.version <= applied:
                    continue
                for statement in migration.render(self.engine.types):
                    tx.execute(statement)
                for statement in self.engine.migration_statements(migration.version):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [migration.version, migration.description, time.time()],
                )
        self._schema_checked = True

    def _schema_version_if_any(self) -> int:
        with self.tx() as tx:
            exists = tx.scalar(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name = 'schema_version'"
            )
            return tx.scalar("SELECT coalesce(max(version), 0) FROM schema_version") if exists else 0

    def _render(self, statement: str) -> str:
        return Template(statement).substitute(self.engine.types)

    @staticmethod
    def _too_new(version: int) -> StoreError:
        return StoreError(
            f"the store was written by a newer Switchboard (schema {version}, "
            f"this one knows up to {LATEST_VERSION})",
            hint="upgrade Switchboard",
        )

    def schema_version(self) -> int:
        with self.tx() as tx:
            return tx.scalar("SELECT coalesce(max(version), 0) FROM schema_version")

    # --- ad-hoc queries -------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run one read-only SELECT (notebooks, ad-hoc analysis) and return a pandas DataFrame.
        Anything else (several statements, writes, COPY, ATTACH) is refused, and the query runs in
        a sandbox that cannot read files or reach the network (see the engines). Secrets are
        ciphertext."""
        import duckdb  # its parser decides what a statement is, for both engines

        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise ConfigurationError(f"invalid SQL: {exc}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise ConfigurationError("Store.query runs exactly one SELECT statement")
        # The store lock without a session's connection: DuckDB opens the sandbox as its own instance.
        with self.engine.session_lock.hold(self._busy_timeout, self._busy):
            return self.engine.read_only_query(sql, list(params or []))

    # --- encryption -----------------------------------------------------------------------------

    def seal(self, tx: Tx, plaintext: str, context: SecretContext) -> bytes:
        """Encrypt under the active key, counting the encryption against the key's limit."""
        key_id = self._keyring.active_id
        used = tx.scalar("SELECT encryptions FROM key_usage WHERE key_id = ?", [key_id])
        if used is not None and used >= self._max_encryptions:
            # Force a rotation before the random-nonce limit; old keys keep decrypting.
            key_id = self._keyring.rotate()
            log.warning("key usage limit reached: rotated the store key to %s", key_id)
        tx.execute(
            "INSERT INTO key_usage VALUES (?, 1) ON CONFLICT (key_id) DO UPDATE "
            "SET encryptions = key_usage.encryptions + 1",
            [key_id],
        )
        return self._keyring.encrypt(plaintext, context, key_id=key_id)

    def unseal(self, spec: SecretTable, column: str, row: Mapping[str, Any]) -> Secret | None:
        blob = row[column]
        return None if blob is None else self._keyring.decrypt(bytes(blob), spec.secret_context(column, row))

    # --- refresh lock ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def refresh_lock(self, key: CredentialKey) -> Iterator[None]:
        """Exclusive per credential across threads, processes and hosts (see `OAuthStorage.refresh_lock`)."""
        if self.engine.session_lock.held_by_me:
            # Lock order is refresh lock, then store lock; the reverse could deadlock two processes.
            raise StoreError("refresh_lock taken inside a store session", hint="take it before the session")
        with self.engine.refresh_lock(key, self._refresh_timeout):
            yield

    def oauth_storage(self) -> Any:
        """The `OAuthStorage` the OAuth code uses over this store."""
        from core.store.oauth import StoreOAuthStorage

        return StoreOAuthStorage(self)
