"""Small helpers over DuckDB cursors shared by the store's modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run `sql` and return its rows as dicts keyed by column name."""
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
