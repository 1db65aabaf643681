"""The seam between the store and a database engine: what DuckDB and PostgreSQL do differently.

Repositories write SQL once, with `?` placeholders and the subset both engines understand; whatever
differs lives in one module per engine (`duckdb_engine.py`, `postgres_engine.py`): DDL type names,
the few SQL snippets that differ (text search, id series), bulk loading, locks, the read-only query
sandbox and the translation of the driver's errors. The kernel (`db.Store`) gets an `Engine` from
`open_engine` and never imports a driver itself, so a DuckDB user never loads psycopg and a
PostgreSQL user never needs pyarrow.

A store location is a PostgreSQL URL (`postgresql://…` or `postgres://…`) or a DuckDB file path
(`:memory:` for a throwaway store). Another scheme (`mysql://…`) is refused: a URL is never taken
for a file name.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from core.errors import ConfigurationError
from core.oauth.storage import CredentialKey

POSTGRES_SCHEMES = ("postgresql", "postgres")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_server_url(location: str | Path) -> bool:
    """True for a PostgreSQL URL; `ConfigurationError` for any other URL; False for a path."""
    found = _URL.match(str(location))
    if found is None:
        return False
    if found.group(1).lower() not in POSTGRES_SCHEMES:
        raise ConfigurationError(
            f"the store location uses the unsupported scheme {found.group(1)!r}",
            hint="set SWITCHBOARD_STORE to postgresql://user@host/db or to a DuckDB file path",
        )
    return True


class SessionLock(Protocol):
    """Held around a session; `held_by_me` tells whether this thread is inside one."""

    @property
    def held_by_me(self) -> bool: ...

    def hold(
        self, timeout: float, on_timeout: Callable[[], Exception]
    ) -> contextlib.AbstractContextManager[None]: ...


class Engine(Protocol):
    """One database engine under the store. Connections are the driver's own objects; the kernel
    passes them back to the engine, which alone knows their API."""

    name: str  # "duckdb" | "postgresql"
    location: str  # for messages: a path, or the URL without its password
    types: Mapping[str, str]  # DDL names: double, blob, json, empty_list, fingerprint_ok
    session_lock: SessionLock
    exact_counts: bool  # filtered inventory counts are cheap enough to be exact

    def connect(self, deadline: float) -> Any: ...

    def disconnect(self, con: Any, *, failed: bool = False) -> None:
        """The session ended (`failed`: by an exception, so the connection is not reused as is)."""
        ...

    def begin(self, con: Any) -> None: ...

    def commit(self, con: Any) -> None: ...

    def rollback(self, con: Any) -> None: ...

    def execute(self, con: Any, sql: str, params: Sequence[Any]) -> Any:
        """Run one statement; the result has `fetchone`, `fetchall` and `description`."""
        ...

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Translate the driver's exceptions into `core.errors` (ConflictError, StoreError)."""
        ...

    def lock_in_transaction(self, con: Any, name: str) -> None:
        """Exclusive until the transaction ends, across processes and hosts (named lock)."""
        ...

    def refresh_lock(self, key: CredentialKey, timeout: float) -> contextlib.AbstractContextManager[None]:
        """Exclusive per credential across threads, processes and (PostgreSQL) hosts; released by
        a process that dies holding it. Raises `StoreBusy` after `timeout` seconds."""
        ...

    def bulk_insert(self, con: Any, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Append rows given as equally long columns, without one statement per row."""
        ...

    def search_condition(self, column: str, text: str) -> tuple[str, list[Any]]:
        """A substring test on `column` (lower-cased text) and its parameters."""
        ...

    def id_series(self, sequence: str) -> str:
        """SELECT of `?` fresh values of `sequence`."""
        ...

    def among(self, column: str, sql_type: str) -> str:
        """`column` is one of the values of a list parameter `?` of `sql_type`."""
        ...

    def read_only_query(self, sql: str, params: Sequence[Any]) -> Any:
        """One SELECT in a sandbox (no writes, no files, no network); a pandas DataFrame."""
        ...

    def migration_statements(self, version: int) -> Sequence[str]:
        """The statements of migration `version` that exist for this engine only (indexes, roles)."""
        ...

    def after_transaction(self) -> None: ...

    def close(self) -> None: ...


class Tx:
    """One connection inside a transaction, as repositories see it."""

    __slots__ = ("con", "engine")

    def __init__(self, con: Any, engine: Engine) -> None:
        self.con = con
        self.engine = engine

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.engine.execute(self.con, sql, params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def column(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return [row[0] for row in self.execute(sql, params).fetchall()]

    def bulk_insert(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        self.engine.bulk_insert(self.con, table, columns)

    def lock(self, name: str) -> None:
        self.engine.lock_in_transaction(self.con, name)


def open_engine(location: str | Path, *, busy_timeout: float, refresh_timeout: float) -> Engine:
    """The engine for a store location (see the module docstring)."""
    if is_server_url(location):
        from core.store.postgres_engine import PostgresEngine

        return PostgresEngine(str(location), busy_timeout=busy_timeout, refresh_timeout=refresh_timeout)
    from core.store.duckdb_engine import DuckDBEngine

    return DuckDBEngine(location, refresh_timeout=refresh_timeout)
