"""The DuckDB engine: one embedded file shared by the dashboard, notebooks and CLI processes.

DuckDB lets one process at a time open a file (a second one, even read-only, gets "Could not set
lock on file"), has no row locks, and a connection must not be used by two threads at once. So every
session takes the store lock — threads first come, first served, then `flock` on `<store>.lock`
with a turnstile so processes take turns (`locks.py`) — opens a connection (retrying while someone
outside Switchboard, a DuckDB shell, holds the file) and closes it when the lock goes. Since
sessions exclude each other, a transaction-scoped named lock has nothing left to exclude. Opening an
instance costs ~11 ms (DuckDB builds its function catalog per instance), which is why callers batch
operations into one session, and why a session that ends while other threads of this process wait
(and no other process does) leaves its connection open for the next one (`ExclusiveLock.park`):
a burst of concurrent calls pays one open, not one per session.

A token refresh holds `flock` on a per-credential file in `<store>.locks/` across read-refresh-write;
a process that dies releases it with its descriptors. ":memory:" stores (tests) keep one instance
alive and use a cursor per session.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

# DuckDB's C++ extension, which the `duckdb` package re-exports (same classes, same exceptions): the
# engine needs nothing else. The package's Python layer (relational API, expression builder, Arrow
# and Polars sources, its version read through importlib.metadata) costs ~80 ms of CPU per process,
# a third of a CLI command; `bulk_insert` loads it, since DuckDB's Arrow scan calls back into it.
try:
    import _duckdb as duckdb
except ImportError:  # a DuckDB that ships its extension under another name
    import duckdb

from core.config import ensure_private_dir, restrict_file
from core.errors import ConfigurationError, ConflictError, StoreBusy, StoreError
from core.oauth.storage import CredentialKey
from core.store.locks import ExclusiveLock, lock_for

log = logging.getLogger(__name__)

MEMORY = ":memory:"
# Engine settings of the read-only query sandbox (`Store.query`, #16.5): no file, network or
# extension access, and the configuration locked so the query cannot switch any of it back on.
_SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}


class DuckDBEngine:
    name = "duckdb"
    # A column store counts a filtered million rows in milliseconds: pages say exactly how many.
    exact_counts = True
    types: ClassVar[Mapping[str, str]] = {
        "double": "DOUBLE",
        "blob": "BLOB",
        "json": "JSON",
        "empty_list": "[]",
        "fingerprint_ok": "regexp_full_match(credential_fingerprint, '[0-9a-f]{8}')",
    }

    def __init__(self, path: str | Path, *, refresh_timeout: float) -> None:
        self._refresh_timeout = refresh_timeout
        self._refresh_locks: dict[CredentialKey, ExclusiveLock] = {}
        self._refresh_locks_mutex = threading.Lock()
        if str(path) == MEMORY:
            self.path: Path | None = None
            self._memory: duckdb.DuckDBPyConnection | None = duckdb.connect(MEMORY)
            self.session_lock = ExclusiveLock(None)
            self.location = MEMORY
        else:
            self.path = Path(path).expanduser().absolute()
            self._memory = None
            ensure_private_dir(self.path.parent)
            self.session_lock = lock_for(self._sibling(".lock"))
            self.location = str(self.path)

    # --- connections ----------------------------------------------------------------------------

    def connect(self, deadline: float) -> duckdb.DuckDBPyConnection:
        if self.path is None:
            if self._memory is None:
                raise StoreError("the in-memory store was closed")
            return self._memory.cursor()
        handed_over = self.session_lock.unpark()
        if handed_over is not None:
            return handed_over
        con = self._open(deadline, {})
        # A setting, not connect(config=...): a connection with a different config to an instance
        # already open in this process (say, a notebook's own) would be refused. In Jupyter without
        # ipywidgets DuckDB has already disabled the bar itself and refuses the SET: nothing to do.
        with contextlib.suppress(duckdb.InvalidInputException):
            con.execute("SET enable_progress_bar = false")
        return con

    def _open(self, deadline: float, config: dict[str, Any], read_only: bool = False) -> Any:
        assert self.path is not None
        delay = 0.002
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=config)
                break
            except duckdb.IOException as exc:
                # Someone outside Switchboard (a DuckDB CLI, a notebook's own connection) holds the file.
                if "Could not set lock" not in str(exc):
                    raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
                if time.monotonic() + delay > deadline:
                    raise StoreBusy(
                        f"the store {self.path} is held by another program (not Switchboard)",
                        hint="close the other program (e.g. a DuckDB shell on this file) or try again",
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            except duckdb.Error as exc:
                raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        restrict_file(self.path)
        return con

    def disconnect(self, con: duckdb.DuckDBPyConnection, *, failed: bool = False) -> None:
        self.after_transaction()
        if self.path is None or failed:
            _close(con)  # after a failure, never hand a connection on
        else:
            self.session_lock.park(con, _close)  # closed when the lock goes, unless handed over

    def begin(self, con: duckdb.DuckDBPyConnection) -> None:
        con.begin()

    def commit(self, con: duckdb.DuckDBPyConnection) -> None:
        con.commit()

    def rollback(self, con: duckdb.DuckDBPyConnection) -> None:
        con.rollback()

    def execute(self, con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> Any:
        return con.execute(sql, list(params))

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except duckdb.TransactionException as exc:
            # Only another connection in this process could cause it (sessions are serialized).
            raise ConflictError("a concurrent write to the same row won") from exc
        except duckdb.Error as exc:
            raise StoreError(f"store operation failed: {exc}") from exc

    def lock_in_transaction(self, con: Any, name: str) -> None:
        """Nothing to do: a session already excludes every other session on the file."""

    def after_transaction(self) -> None:
        if self.path is not None:
            restrict_file(self._sibling(".wal"))  # DuckDB creates the WAL with the umask's mode

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    # --- refresh locks --------------------------------------------------------------------------

    @contextlib.contextmanager
    def refresh_lock(self, key: CredentialKey, timeout: float) -> Iterator[None]:
        with self._refresh_lock(key).hold(timeout, _refresh_busy):
            yield

    def _refresh_lock(self, key: CredentialKey) -> ExclusiveLock:
        if self.path is None:
            with self._refresh_locks_mutex:
                return self._refresh_locks.setdefault(key, ExclusiveLock(None))
        directory = self._sibling(".locks")
        ensure_private_dir(directory)
        name = hashlib.sha256(f"{key.connector_id}\0{key.agent_id}".encode()).hexdigest()[:32]
        return lock_for(directory / f"{name}.lock")

    # --- SQL that differs -----------------------------------------------------------------------

    def bulk_insert(
        self, con: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, Sequence]
    ) -> None:
        """One Arrow insert per table (never row by row). Column types come from the table."""
        importlib.import_module("duckdb")  # the Arrow scan calls back into the package: load it first
        import pyarrow as pa  # only stores that write tool lists pay for importing it

        names = list(columns)
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
        )
        arrow = {
            "BIGINT": pa.int64(),
            "INTEGER": pa.int32(),
            "DOUBLE": pa.float64(),
            "BOOLEAN": pa.bool_(),
            "BLOB": pa.binary(),
            "VARCHAR[]": pa.list_(pa.string()),
        }
        incoming = pa.table({n: pa.array(columns[n], arrow.get(types[n], pa.string())) for n in names})
        view = f"incoming_{table}"
        con.register(view, incoming)
        try:
            con.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(names)} FROM {view}")
        finally:
            con.unregister(view)

    def search_condition(self, column: str, text: str) -> tuple[str, list[Any]]:
        return f"contains({column}, ?)", [text]

    def among(self, column: str, sql_type: str) -> str:
        return f"{column} IN (SELECT unnest(?::{sql_type}[]))"

    def id_series(self, sequence: str) -> str:
        return f"SELECT nextval('{sequence}') FROM range(?)"

    def migration_statements(self, version: int) -> Sequence[str]:
        return ()  # zone maps over rows inserted grouped by snapshot do what indexes do elsewhere

    # --- the read-only sandbox ------------------------------------------------------------------

    def read_only_query(self, sql: str, params: Sequence[Any]) -> Any:
        """On its own read-only instance with external access off and the configuration locked, so
        neither `read_text('<key file>')` nor an extension download can run. Call inside the store
        lock (the kernel does): no other instance of the file is open in this process then."""
        if self.path is None:
            raise ConfigurationError(
                "Store.query needs a store file: an in-memory store cannot be opened in the sandbox"
            )
        self.session_lock.discard_parked()  # the sandbox is an instance of its own
        try:
            con = self._open(time.monotonic() + 30, dict(_SANDBOX), read_only=True)
        except StoreError as exc:
            if "different configuration" not in str(exc):
                raise
            raise ConfigurationError(
                "Store.query cannot run while this thread holds a store session",
                hint="call it outside `with store.session()`",
            ) from None
        try:
            return con.execute(sql, list(params)).df()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from None
        finally:
            con.close()

    def _sibling(self, suffix: str) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + suffix)


def _close(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.close()  # the last connection of the instance: checkpoints and releases the file
    except duckdb.Error as exc:
        log.warning("closing the store failed: %s", exc)


def _refresh_busy() -> StoreBusy:
    return StoreBusy("another worker has been refreshing this credential for too long", hint="try again")
