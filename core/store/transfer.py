"""`store migrate` and `store copy FROM TO`: bring a store to this version's schema, and move a store
between engines (a laptop's DuckDB file onto a team's PostgreSQL, and back).

A copy carries every row as it is: ciphertexts stay the bytes they were (they are bound to their
table, column and row, not to an engine), so the target needs the same keyring as the source. It
runs in one target transaction: the target is refused when it holds any row unless `force` (then its
rows are replaced), each table's row count is verified against the source before the commit, and
the id sequences are moved past the copied ids. Nothing is written to the source except the
migrations its opening applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import load_settings
from core.errors import ConfigurationError, StoreError
from core.store.crypto import Keyring
from core.store.db import Store
from core.store.engine import Tx

# Every table but schema_version, parents before children.
TABLES = (
    "connectors",
    "agents",
    "credentials",
    "oauth_clients",
    "pending_authorizations",
    "tool_snapshots",
    "tools",
    "current_tools",
    "audit_log",
    "auth_trace",
    "key_usage",
    "flash_messages",
    "agent_tokens",
    "agent_policies",
    "tool_pinning",
    "tool_approvals",
    "operators",
)
# Not copied: `gateway_changes` (one counter row every store has; bumped on the target instead, so
# gateways serving it reload), `gateway_instances` (heartbeats of the source's gateway processes)
# and `ended_sessions` (sign-outs of the source's dashboard sessions, signed with its secret).
NOT_COPIED = ("gateway_changes", "gateway_instances", "ended_sessions")
# sequence -> (table, id column) it numbers
SEQUENCES = {
    "tool_snapshot_ids": ("tool_snapshots", "id"),
    "audit_ids": ("audit_log", "id"),
    "auth_trace_ids": ("auth_trace", "id"),
}
_BATCH = 10_000


@dataclass(frozen=True)
class MigrationReport:
    location: str  # a path, or the URL without its password
    schema_version: int


@dataclass(frozen=True)
class CopyReport:
    source: str
    target: str
    rows: Mapping[str, int]  # table -> rows copied (equal in source and target)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def migrate(location: str | Path | None = None, *, keyring: Keyring | None = None) -> MigrationReport:
    """Apply the migrations the store at `location` (default: `SWITCHBOARD_STORE`) lacks; reports
    its schema version. Refuses a store written by a newer Switchboard."""
    store = _open(location, keyring)
    try:
        return MigrationReport(store.location, store.schema_version())
    finally:
        store.close()


def copy(
    source: str | Path,
    target: str | Path,
    *,
    force: bool = False,
    keyring: Keyring | None = None,
) -> CopyReport:
    """Copy every row of `source` into `target` (either engine); see the module docstring."""
    if str(source) == str(target):
        raise ConfigurationError("the source and the target of a copy are the same store")
    keyring = keyring or Keyring.from_settings(load_settings())
    origin, destination = _open(source, keyring), _open(target, keyring)
    try:
        counts: dict[str, int] = {}
        with origin.tx() as read, destination.tx() as write:
            occupied = [t for t in TABLES if write.scalar(f"SELECT count(*) FROM {t}")]
            if occupied and not force:
                raise ConfigurationError(
                    f"the target store {destination.location} is not empty ({', '.join(occupied)})",
                    hint="copy into an empty store, or replace its rows with --force (force=True)",
                )
            for table in reversed(TABLES):
                write.execute(f"DELETE FROM {table}")
            for table in TABLES:
                counts[table] = _copy_table(read, write, table)
                copied = write.scalar(f"SELECT count(*) FROM {table}")
                if copied != counts[table]:
                    raise StoreError(
                        f"copying {table} wrote {copied} rows of {counts[table]}; nothing was committed",
                        hint="check the target database and run the copy again",
                    )
            write.execute("UPDATE gateway_changes SET generation = generation + 1")
            for sequence, (table, column) in SEQUENCES.items():
                highest = write.scalar(f"SELECT max({column}) FROM {table}")
                if highest is not None:
                    _advance(write, sequence, int(highest))
        return CopyReport(origin.location, destination.location, counts)
    finally:
        origin.close()
        destination.close()


def _open(location: str | Path | None, keyring: Keyring | None) -> Store:
    if location is None:
        return Store.open()
    return Store(location, keyring=keyring or Keyring.from_settings(load_settings()))


def _copy_table(read: Tx, write: Tx, table: str) -> int:
    cursor = read.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cursor.description]
    total = 0
    while batch := cursor.fetchmany(_BATCH):
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for row in batch:
            for name, value in zip(names, row, strict=True):
                columns[name].append(bytes(value) if isinstance(value, memoryview) else value)
        write.bulk_insert(table, columns)
        total += len(batch)
    return total


def _advance(tx: Tx, sequence: str, past: int) -> None:
    """Make the next value of `sequence` greater than `past` (both engines: draw values until it is)."""
    current = tx.scalar(f"SELECT nextval('{sequence}')")
    if current < past:
        tx.column(tx.engine.id_series(sequence), [past - current])
