"""The PostgreSQL engine: one server database shared by many processes on many hosts (psycopg 3).

Connections come from a psycopg-pool pool per process (checked on checkout, so a restarted server
costs one failed check, not a failed operation). Sessions do not exclude each other as DuckDB's
must: rows are locked by the statements that write them, a compare-and-swap `UPDATE … WHERE version
= ?` waits for a concurrent writer and re-checks, and what must be exclusive across processes takes
a PostgreSQL advisory lock:

- `refresh_lock(key)`: `pg_advisory_lock` on a connection held across read-refresh-write; a process
  that dies mid-refresh loses its connection and with it the lock (within the server's TCP keepalive
  or at once on a clean kill), and the next worker takes over;
- named transaction locks (`pg_advisory_xact_lock`): migrations, recording tool snapshots.

`lock_timeout` bounds every wait for a row or advisory lock (`StoreBusy` after it). The synchronous
driver matches the store API the services call from worker threads; see `benchmarks/bench_store.py`
for why an async pool did not pay.

`Store.query` runs in a read-only transaction as the `switchboard_query` role (SELECT on the tables,
nothing else; created by the migrations when the store's login may create roles). A query can switch
back to the login's own role (`set_config('role', …)`), which reads the same tables and is still
read-only (the mode cannot change once the query has run); what keeps files and programs out of
reach is that the login is no superuser, so a superuser login is refused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from core.errors import ConfigurationError, ConflictError, StoreBusy, StoreError
from core.oauth.storage import CredentialKey
from core.store.locks import ThreadMarker

QUERY_ROLE = "switchboard_query"
_UNDERSCORE = "u9z"  # how the search index spells "_" (see search_condition)
CONNECT_TIMEOUT = 10
POOL_SIZE = 16
_QUERY_TIMEOUT_MS = 60_000
# The role and its grants, re-run after every migration so new tables are covered. A login that may
# not create roles skips it; Store.query then names the fix.
_QUERY_ROLE_SETUP = f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{QUERY_ROLE}') THEN
    CREATE ROLE {QUERY_ROLE} NOLOGIN;
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO {QUERY_ROLE}', current_schema());
  EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {QUERY_ROLE}', current_schema());
  EXECUTE format('GRANT {QUERY_ROLE} TO %I', current_user);
EXCEPTION WHEN insufficient_privilege OR duplicate_object THEN NULL;
END $$"""
_INDEXES = {
    1: (
        "CREATE INDEX tools_snapshot ON tools (snapshot_id, name)",
        "CREATE INDEX current_tools_snapshot ON current_tools (snapshot_id)",
        "CREATE INDEX current_tools_connector_name ON current_tools (connector_name, agent_id, name)",
        "CREATE INDEX tool_snapshots_owner ON tool_snapshots (connector_id, agent_id, id)",
        "CREATE INDEX audit_log_id ON audit_log (id)",
        "CREATE INDEX audit_log_called_at ON audit_log (called_at)",
        "CREATE INDEX auth_trace_owner ON auth_trace (connector_id, agent_id, id)",
        "CREATE INDEX auth_trace_attempt ON auth_trace (attempt_id, id)",
        "CREATE INDEX auth_trace_recorded_at ON auth_trace (recorded_at)",
    ),
    # A rare word over a million tools: a trigram index answers LIKE '%word%' without a scan. Each
    # sort key has an index ending in the page order's tie-breakers, so a filtered page is an
    # ordered index scan that stops after one page.
    3: (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        (
            "CREATE INDEX current_tools_search ON current_tools "
            f"USING gin (replace(search_text, '_', '{_UNDERSCORE}') gin_trgm_ops)"
        ),
        # Booleans that are rarely true or rarely false (destructive, drift): an index finds the few.
        "CREATE INDEX current_tools_destructive ON current_tools (destructive)",
        "CREATE INDEX current_tools_drift ON current_tools (drift)",
        *(
            f"CREATE INDEX current_tools_by_{column} ON current_tools ({column}, connector_name, agent_id, name)"
            for column in ("name", "title", "changed_at", "parameter_count")
        ),
    ),
}


class PostgresEngine:
    name = "postgresql"
    # A row store counts by visiting rows: filtered counts stop at tools.SEARCH_COUNT_CAP.
    exact_counts = False
    types: ClassVar[Mapping[str, str]] = {
        "double": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "json": "JSON",
        "empty_list": "'{}'",
        "fingerprint_ok": "credential_fingerprint ~ '^[0-9a-f]{8}$'",
    }

    def __init__(self, url: str, *, busy_timeout: float, refresh_timeout: float) -> None:
        self.location = redacted(url)
        self._busy_timeout = busy_timeout
        self._refresh_timeout = refresh_timeout
        self.session_lock = ThreadMarker()
        _check_reachable(url, self.location)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            configure=functools.partial(_configure, lock_timeout_ms=int(busy_timeout * 1000)),
            check=ConnectionPool.check_connection,
            open=False,
            name="switchboard-store",
        )
        self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)

    # --- connections ----------------------------------------------------------------------------

    def connect(self, deadline: float) -> psycopg.Connection:
        try:
            return self._pool.getconn(timeout=self._busy_timeout)
        except PoolTimeout as exc:
            raise StoreBusy(
                f"no connection to {self.location} within {self._busy_timeout:g} s",
                hint="check that the PostgreSQL server is up, or raise its max_connections",
            ) from exc

    def disconnect(self, con: psycopg.Connection, *, failed: bool = False) -> None:
        self._pool.putconn(con)  # the pool checks a connection before handing it out again

    def begin(self, con: psycopg.Connection) -> None:
        con.execute("BEGIN")

    def commit(self, con: psycopg.Connection) -> None:
        con.execute("COMMIT")

    def rollback(self, con: psycopg.Connection) -> None:
        if not con.closed:
            con.execute("ROLLBACK")

    def execute(self, con: psycopg.Connection, sql: str, params: Sequence[Any]) -> Any:
        return con.execute(_placeholders(sql), list(params))

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except (pg_errors.UniqueViolation, pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as exc:
            raise ConflictError("a concurrent write to the same row won") from exc
        except pg_errors.LockNotAvailable as exc:
            raise StoreBusy(
                f"a row of {self.location} stayed locked by another process for {self._busy_timeout:g} s",
                hint="try again",
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"lost the connection to PostgreSQL at {self.location}: {_first_line(exc)}",
                hint="check that the server is up; the operation was not committed",
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"store operation failed: {_first_line(exc)}") from exc

    def lock_in_transaction(self, con: psycopg.Connection, name: str) -> None:
        con.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id("named", name)])

    def after_transaction(self) -> None:
        pass

    def close(self) -> None:
        self._pool.close()

    # --- refresh locks --------------------------------------------------------------------------

    @contextlib.contextmanager
    def refresh_lock(self, key: CredentialKey, timeout: float) -> Iterator[None]:
        lock_id = _lock_id("refresh", key.connector_id, key.agent_id)
        with self.errors(), self._pool.connection(timeout=timeout) as con:
            con.execute("SELECT set_config('lock_timeout', %s, false)", [f"{max(int(timeout * 1000), 1)}ms"])
            try:
                con.execute("SELECT pg_advisory_lock(%s)", [lock_id])
            except pg_errors.LockNotAvailable:
                raise StoreBusy(
                    "another worker has been refreshing this credential for too long", hint="try again"
                ) from None
            finally:
                con.execute("RESET lock_timeout")
            try:
                yield
            finally:
                if not con.closed:
                    con.execute("SELECT pg_advisory_unlock(%s)", [lock_id])

    # --- SQL that differs -----------------------------------------------------------------------

    def bulk_insert(self, con: psycopg.Connection, table: str, columns: Mapping[str, Sequence]) -> None:
        """COPY … FROM STDIN: one round trip per batch, not one statement per row."""
        names = list(columns)
        with con.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in zip(*(columns[n] for n in names), strict=True):
                copy.write_row(row)

    def search_condition(self, column: str, text: str) -> tuple[str, list[Any]]:
        # pg_trgm makes trigrams of alphanumeric runs only, so "create_issue" would find every row
        # holding "create" and "issue" and recheck them all. The index is on the text with "_"
        # spelled as an alphanumeric token (_UNDERSCORE), which keeps snake_case names selective;
        # the second LIKE on the column itself keeps the answer exact.
        spelled = _like_pattern(text.replace("_", _UNDERSCORE))
        return (
            f"replace({column}, '_', '{_UNDERSCORE}') LIKE ? AND {column} LIKE ?",
            [spelled, _like_pattern(text)],
        )

    def among(self, column: str, sql_type: str) -> str:
        # = ANY keeps an ordered index scan possible (a semi-join would sort every match first).
        return f"{column} = ANY(?::{sql_type}[])"

    def id_series(self, sequence: str) -> str:
        return f"SELECT nextval('{sequence}') FROM generate_series(1, ?)"

    def migration_statements(self, version: int) -> Sequence[str]:
        return (*_INDEXES.get(version, ()), _QUERY_ROLE_SETUP)

    # --- the read-only sandbox ------------------------------------------------------------------

    def read_only_query(self, sql: str, params: Sequence[Any]) -> Any:
        import pandas as pd

        with self.errors(), self._pool.connection(timeout=self._busy_timeout) as con:
            if con.execute("SELECT rolsuper FROM pg_roles WHERE rolname = session_user").fetchone()[0]:
                raise ConfigurationError(
                    "Store.query refuses to run while the store logs in as a PostgreSQL superuser",
                    hint="connect Switchboard as an ordinary role that owns the database",
                )
            with con.transaction():
                con.execute("SET TRANSACTION READ ONLY")
                try:
                    con.execute(f"SET LOCAL ROLE {QUERY_ROLE}")
                except pg_errors.Error:
                    raise ConfigurationError(
                        f"Store.query needs the PostgreSQL role {QUERY_ROLE}, which this login could not create",
                        hint=f"as an administrator: CREATE ROLE {QUERY_ROLE} NOLOGIN; GRANT SELECT ON ALL "
                        f"TABLES IN SCHEMA public TO {QUERY_ROLE}; GRANT {QUERY_ROLE} TO <store user>",
                    ) from None
                con.execute(f"SET LOCAL statement_timeout = {_QUERY_TIMEOUT_MS}")
                try:
                    # prepare=True: the extended protocol, which runs exactly one statement.
                    cursor = con.execute(_placeholders(sql), list(params), prepare=True)
                except psycopg.Error as exc:
                    raise StoreError(f"query failed: {_first_line(exc)}") from None
                names = [c.name for c in cursor.description or ()]
                frame = pd.DataFrame(cursor.fetchall(), columns=names)
                raise psycopg.Rollback()  # nothing it did survives, whatever it was
        return frame


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


@functools.lru_cache(maxsize=2048)
def _placeholders(sql: str) -> str:
    # The store's SQL has no '?' or '%' in string literals except these LIKE-free snippets.
    return sql.replace("%", "%%").replace("?", "%s")


def _configure(con: psycopg.Connection, *, lock_timeout_ms: int) -> None:
    # JSON columns come back as the canonical text we stored, as DuckDB returns them.
    for name in ("json", "jsonb"):
        con.adapters.register_loader(name, TextLoader)
    con.execute("SELECT set_config('lock_timeout', %s, false)", [f"{lock_timeout_ms}ms"])
    # Plan every execution with its parameters: a generic plan cannot tell a rare search word (use
    # the trigram index) from a common one (walk the sort order), and statements are reused a lot.
    con.execute("SET plan_cache_mode = force_custom_plan")


def _like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (its wildcards and the escape character escaped)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _lock_id(*parts: str) -> int:
    digest = hashlib.sha256("\0".join(("switchboard", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _check_reachable(url: str, location: str) -> None:
    """Fail fast with a message naming the fix, before the pool starts retrying in the background."""
    try:
        target = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigurationError(
            f"the store URL {location} is not a valid PostgreSQL URL",
            hint="use postgresql://user[:password]@host[:port]/database",
        ) from None
    where = f"{target.get('host', 'localhost')}:{target.get('port', 5432)}/{target.get('dbname', '')}"
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True).close()
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password" in text or "authentication" in text or re.search(r'role ".*" does not exist', text):
            raise StoreError(
                f"PostgreSQL at {where} refused the credentials of user {target.get('user', '(default)')!r}",
                hint="fix the user or password in SWITCHBOARD_STORE (or use ~/.pgpass)",
            ) from None
        if re.search(r'database ".*" does not exist', text):
            raise StoreError(
                f"PostgreSQL at {where} has no database {target.get('dbname')!r}",
                hint=f"create it: createdb -O <store user> {target.get('dbname')}",
            ) from None
        raise StoreError(
            f"cannot reach PostgreSQL at {where}: {_first_line(exc)}",
            hint="check that the server is running and the host and port in SWITCHBOARD_STORE",
        ) from None
