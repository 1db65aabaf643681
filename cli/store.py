"""`switchboard store migrate|copy`: bring a store to this version's schema, and move a store between
engines (a laptop's DuckDB file onto a team's PostgreSQL, and back; `core.store.transfer`).

A store is a DuckDB file path or a `postgresql://` URL. `migrate` works on the store the other
commands use (`--store`, else `SWITCHBOARD_STORE`); `copy` names both ends and needs the keyring the
source was written with (`SWITCHBOARD_KEY` or the key file): ciphertexts are carried as they are.
"""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, table


def register(commands: Commands) -> None:
    store = commands.group("store", "migrate the store, or copy it to another store")
    store.add("migrate", _migrate, "apply the migrations the store lacks (--store, else SWITCHBOARD_STORE)")
    copy = store.add(
        "copy", _copy, "copy every row of one store into another (DuckDB file or postgresql:// URL)"
    )
    copy.add_argument("source", metavar="FROM", help="the store to copy")
    copy.add_argument("target", metavar="TO", help="the store to fill (must be empty unless --force)")
    copy.add_argument("--force", action="store_true", help="replace the rows of a target that is not empty")


def _migrate(args: argparse.Namespace) -> None:
    from core.store import transfer

    report = transfer.migrate(getattr(args, "store", None))
    emit(
        args,
        {"store": report.location, "schema_version": report.schema_version},
        f"{report.location} is at schema version {report.schema_version}",
    )


def _copy(args: argparse.Namespace) -> None:
    from core.store import transfer

    report = transfer.copy(args.source, args.target, force=args.force)
    rows = [{"table": name, "rows": count} for name, count in report.rows.items()]
    emit(
        args,
        {"source": report.source, "target": report.target, "rows": dict(report.rows), "total": report.total},
        f"copied {report.total} rows from {report.source} to {report.target}\n{table(rows, ['table', 'rows'])}",
    )
