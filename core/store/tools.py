"""Tool snapshots: recording a sync's tool list, the inventory page query, and drift.

A snapshot is a *distinct* tool list of (connector, agent): syncing the same list again only moves
its `verified_at`, so "the previous snapshot" is always the last list that differed and drift shows
the latest real change. Rows are written with one Arrow insert per table (never row by row).

Inventory pages read only `current_tools` — the narrow listing columns of the current snapshots, with
`search_text` lower-cased once at write time — never the history in `tools` nor its JSON columns.
Rows of one snapshot are inserted together, so DuckDB's zone maps skip whole row groups when a page
is filtered by connector. Measured numbers are in `core/store/bench.py`'s report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from core.errors import ConfigurationError
from core.models import ToolPage
from core.store.records import SnapshotResult, ToolChange, ToolDrift
from core.store.sql import rows

DEFAULT_SNAPSHOTS_KEPT = 10
MAX_PAGE = 1000
# A text search stops counting here: a common word in a 1M-tool inventory would otherwise scan every
# row just to say how many pages there are (52 ms vs 2 ms measured); nobody pages that far anyway.
SEARCH_COUNT_CAP = 10_000
# Public sort key -> column of the page query; every order ends with (connector, agent, tool name)
# so pages are stable.
SORT_KEYS = {
    "connector": "connector_name",
    "agent": "agent_name",
    "name": "name",
    "title": "title",
    "last_changed_at": "changed_at",
    "parameter_count": "parameter_count",
}
_COMPARED_FIELDS = ("title", "description", "input_schema", "output_schema", "annotations")


@dataclass(frozen=True)
class PreparedTools:
    """A tool list turned into columns, ready to insert."""

    columns: dict[str, list[Any]]
    list_hash: str

    @property
    def count(self) -> int:
        return len(self.columns["name"])


def prepare(tools: Sequence[Mapping[str, Any]]) -> PreparedTools:
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "name",
            "title",
            "description",
            "input_schema",
            "output_schema",
            "annotations",
            "raw",
            "def_hash",
            "parameter_count",
            "read_only",
            "destructive",
            "search_text",
        )
    }
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        name = tool.get("name") if isinstance(tool, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"tool #{index} in the list has no name")
        if name in seen:
            continue
        seen.add(name)
        raw = _canonical(tool)
        annotations = tool.get("annotations") if isinstance(tool.get("annotations"), Mapping) else {}
        title = _text(tool.get("title")) or _text(annotations.get("title"))  # MCP's display-name order
        description = _text(tool.get("description"))
        input_schema = tool.get("inputSchema")
        properties = input_schema.get("properties") if isinstance(input_schema, Mapping) else None
        columns["name"].append(name)
        columns["title"].append(title)
        columns["description"].append(description)
        columns["input_schema"].append(_canonical_or_none(input_schema))
        columns["output_schema"].append(_canonical_or_none(tool.get("outputSchema")))
        columns["annotations"].append(_canonical_or_none(tool.get("annotations")))
        columns["raw"].append(raw)
        columns["def_hash"].append(hashlib.sha256(raw.encode()).hexdigest())
        columns["parameter_count"].append(len(properties) if isinstance(properties, Mapping) else 0)
        columns["read_only"].append(_flag(annotations.get("readOnlyHint")))
        columns["destructive"].append(_flag(annotations.get("destructiveHint")))
        columns["search_text"].append("\n".join(p for p in (name, title, description) if p).lower())
    listing = "\n".join(
        sorted(f"{n}\0{h}" for n, h in zip(columns["name"], columns["def_hash"], strict=True))
    )
    return PreparedTools(columns, hashlib.sha256(listing.encode()).hexdigest())


def record_many(
    con: duckdb.DuckDBPyConnection, lists: Sequence[tuple[str, str, PreparedTools]], now: float, *, keep: int
) -> list[SnapshotResult]:
    """Record the tool lists of several (connector, agent) owners with a fixed number of statements,
    however many owners there are: syncing 200 servers writes once, not 200 times."""
    owners = [(connector_id, agent_id) for connector_id, agent_id, _ in lists]
    if len(set(owners)) != len(owners):
        raise ConfigurationError("one tool list per connector and agent in a batch")
    current = _current_snapshots(con, owners)
    results: list[SnapshotResult | None] = [None] * len(lists)
    unchanged, changed = [], []
    for position, (connector_id, agent_id, prepared) in enumerate(lists):
        existing = current.get((connector_id, agent_id))
        if existing is not None and existing[1] == prepared.list_hash:
            unchanged.append(existing[0])
            results[position] = SnapshotResult(existing[0], prepared.count, 0, 0, 0, unchanged=True)
        else:
            changed.append(position)
    if unchanged:
        con.execute(
            "UPDATE tool_snapshots SET verified_at = ? WHERE id IN (SELECT unnest(?::BIGINT[]))",
            [now, unchanged],
        )
    if changed:
        for position, result in zip(
            changed,
            _write_new_snapshots(
                con, [lists[p] for p in changed], [current.get(owners[p]) for p in changed], now, keep
            ),
            strict=True,
        ):
            results[position] = result
    return results  # type: ignore[return-value]


def _current_snapshots(
    con: duckdb.DuckDBPyConnection, owners: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple]:
    found = con.execute(
        f"SELECT s.connector_id, s.agent_id, s.id, s.hash FROM tool_snapshots s JOIN {_OWNERS} "
        "USING (connector_id, agent_id) WHERE s.is_current",
        _owner_params(owners),
    ).fetchall()
    return {(c, a): (snapshot_id, list_hash) for c, a, snapshot_id, list_hash in found}


# (connector, agent) pairs passed as two parallel list parameters (zipped by unnest), not registered
# as a relation: registering fails while a previous statement's result is still open.
_OWNERS = "(SELECT unnest(?::VARCHAR[]) AS connector_id, unnest(?::VARCHAR[]) AS agent_id) owners"


def _owner_params(owners: list[tuple[str, str]]) -> list[list[str]]:
    return [[c for c, _ in owners], [a for _, a in owners]]


def _write_new_snapshots(
    con: duckdb.DuckDBPyConnection,
    lists: list[tuple[str, str, PreparedTools]],
    current: list[tuple | None],
    now: float,
    keep: int,
) -> list[SnapshotResult]:
    import pyarrow as pa  # here: only writing snapshots needs it (~70 ms of imports, numpy included)

    replaced = [c[0] for c in current if c is not None]
    previous: dict[int, dict[str, tuple[str, float, float]]] = {}
    if replaced:
        for snapshot_id, name, def_hash, first_seen, changed_at in con.execute(
            "SELECT snapshot_id, name, def_hash, first_seen_at, changed_at FROM tools "
            "WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))",
            [replaced],
        ).fetchall():
            previous.setdefault(snapshot_id, {})[name] = (def_hash, first_seen, changed_at)
    new_ids = [
        row[0]
        for row in con.execute("SELECT nextval('tool_snapshot_ids') FROM range(?)", [len(lists)]).fetchall()
    ]
    columns: dict[str, list[Any]] = {}
    results = []
    for (connector_id, agent_id, prepared), before_snapshot, snapshot_id in zip(
        lists, current, new_ids, strict=True
    ):
        before = previous.get(before_snapshot[0], {}) if before_snapshot else {}
        result, derived = _compare(prepared, before, had_list=before_snapshot is not None, now=now)
        results.append(SnapshotResult(snapshot_id, prepared.count, *result, unchanged=False))
        for name, values in {**prepared.columns, **derived}.items():
            columns.setdefault(name, []).extend(values)
        columns.setdefault("snapshot_id", []).extend([snapshot_id] * prepared.count)
        columns.setdefault("connector_id", []).extend([connector_id] * prepared.count)
        columns.setdefault("agent_id", []).extend([agent_id] * prepared.count)
    if replaced:
        con.execute(
            "UPDATE tool_snapshots SET is_current = false WHERE id IN (SELECT unnest(?::BIGINT[]))",
            [replaced],
        )
    snapshots = pa.table(
        {
            "id": pa.array(new_ids, pa.int64()),
            "connector_id": [c for c, _, _ in lists],
            "agent_id": [a for _, a, _ in lists],
            "synced_at": pa.array([now] * len(lists), pa.float64()),
            "verified_at": pa.array([now] * len(lists), pa.float64()),
            "tool_count": pa.array([p.count for _, _, p in lists], pa.int32()),
            "hash": [p.list_hash for _, _, p in lists],
        }
    )
    incoming = (
        pa.table(
            {
                **{
                    name: values
                    for name, values in columns.items()
                    if name
                    not in (
                        "snapshot_id",
                        "read_only",
                        "destructive",
                        "parameter_count",
                        "first_seen_at",
                        "changed_at",
                        "drift",
                    )
                },
                "snapshot_id": pa.array(columns.get("snapshot_id", []), pa.int64()),
                "first_seen_at": pa.array(columns.get("first_seen_at", []), pa.float64()),
                "changed_at": pa.array(columns.get("changed_at", []), pa.float64()),
                "drift": pa.array(columns.get("drift", []), pa.bool_()),
                "read_only": pa.array(columns.get("read_only", []), pa.bool_()),
                "destructive": pa.array(columns.get("destructive", []), pa.bool_()),
                "parameter_count": pa.array(columns.get("parameter_count", []), pa.int32()),
            }
        )
        if columns.get("name")
        else None
    )
    con.register("incoming_snapshots", snapshots)
    try:
        con.execute(
            "INSERT INTO tool_snapshots SELECT id, connector_id, agent_id, synced_at, verified_at, tool_count, "
            "hash, true FROM incoming_snapshots"
        )
    finally:
        con.unregister("incoming_snapshots")
    if replaced:
        con.execute("DELETE FROM current_tools WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))", [replaced])
    if incoming is not None:
        con.register("incoming_tools", incoming)
        try:
            con.execute(
                "INSERT INTO tools SELECT snapshot_id, name, title, description, input_schema, output_schema, "
                "annotations, raw, def_hash, first_seen_at, changed_at FROM incoming_tools"
            )
            con.execute(
                "INSERT INTO current_tools SELECT i.connector_id, c.name, i.agent_id, i.snapshot_id, i.name, "
                "i.title, i.description, i.parameter_count, i.read_only, i.destructive, i.def_hash, "
                "i.first_seen_at, i.changed_at, i.drift, i.search_text FROM incoming_tools i "
                "JOIN connectors c ON c.id = i.connector_id"
            )
        finally:
            con.unregister("incoming_tools")
    _prune(con, [(c, a) for c, a, _ in lists], keep)
    return results


def _compare(
    prepared: PreparedTools, before: dict[str, tuple[str, float, float]], *, had_list: bool, now: float
) -> tuple[tuple[int, int, int], dict[str, list[Any]]]:
    """(added, removed, changed) against the previous list, and the per-tool derived columns."""
    first_seen, changed_at, drift = [], [], []
    added = changed = 0
    for name, def_hash in zip(prepared.columns["name"], prepared.columns["def_hash"], strict=True):
        old = before.get(name)
        same = old is not None and old[0] == def_hash
        first_seen.append(old[1] if old else now)
        changed_at.append(old[2] if same else now)
        drift.append(had_list and not same)
        added += old is None
        changed += old is not None and not same
    removed = len(before.keys() - set(prepared.columns["name"]))
    return (added, removed, changed), {"first_seen_at": first_seen, "changed_at": changed_at, "drift": drift}


def _prune(con: duckdb.DuckDBPyConnection, owners: list[tuple[str, str]], keep: int) -> None:
    old = [
        r[0]
        for r in con.execute(
            "SELECT id FROM (SELECT s.id, row_number() OVER (PARTITION BY s.connector_id, s.agent_id "
            f"ORDER BY s.id DESC) AS newest FROM tool_snapshots s JOIN {_OWNERS} USING (connector_id, agent_id)) "
            "WHERE newest > ?",
            [*_owner_params(owners), max(keep, 2)],
        ).fetchall()
    ]
    if old:
        con.execute("DELETE FROM tools WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))", [old])
        con.execute("DELETE FROM tool_snapshots WHERE id IN (SELECT unnest(?::BIGINT[]))", [old])


def list_owner(con: duckdb.DuckDBPyConnection, connector_id: str, agent_id: str) -> str:
    """Whose list `agent_id` sees on a connector: its own if one was recorded, else the shared one."""
    if (
        agent_id
        and con.execute(
            "SELECT 1 FROM tool_snapshots WHERE connector_id = ? AND agent_id = ? AND is_current",
            [connector_id, agent_id],
        ).fetchone()
    ):
        return agent_id
    return ""


def page(
    con: duckdb.DuckDBPyConnection,
    *,
    connector_id: str | None,
    agent_id: str | None,
    search: str | None,
    read_only: bool | None,
    destructive: bool | None,
    drift: bool | None,
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
) -> ToolPage:
    if sort not in SORT_KEYS:
        raise ConfigurationError(f"cannot sort tools by {sort!r}; use one of {', '.join(SORT_KEYS)}")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ConfigurationError(f"page limit must be 1..{MAX_PAGE} and offset >= 0")
    where, params = [], []
    scope = _scope(con, connector_id, agent_id)
    if scope is not None:
        if not scope:
            return ToolPage(rows=[], total=0)
        # Filtering on snapshot ids, not connector ids: a snapshot's rows are contiguous and ids grow
        # with time, so zone maps skip every other row group.
        where.append("t.snapshot_id IN (SELECT unnest(?::BIGINT[]))")
        params.append(scope)
    if search and search.strip():
        where.append("contains(t.search_text, ?)")
        params.append(search.strip().lower())
    for column, value in (("read_only", read_only), ("destructive", destructive), ("drift", drift)):
        if value is not None:
            where.append(f"t.{column} IS NOT DISTINCT FROM ?")
            params.append(value)
    condition = (" WHERE " + " AND ".join(where)) if where else ""
    if len(where) == (0 if scope is None else 1):
        # Only a scope: the snapshots know their sizes, no need to count rows.
        total = con.execute(
            "SELECT coalesce(sum(tool_count), 0) FROM tool_snapshots WHERE is_current"
            + (" AND id IN (SELECT unnest(?::BIGINT[]))" if scope is not None else ""),
            [scope] if scope is not None else [],
        ).fetchone()[0]
    elif search and search.strip():
        total = con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM current_tools t{condition} LIMIT ?)",
            [*params, SEARCH_COUNT_CAP],
        ).fetchone()[0]
    else:
        total = con.execute("SELECT count(*) FROM current_tools t" + condition, params).fetchone()[0]
    order = f"{SORT_KEYS[sort]} {'DESC' if descending else 'ASC'} NULLS LAST, connector_name, agent_id, name"
    # The page is chosen on current_tools alone (so DuckDB's top-N can prune with its running bound);
    # agent names are joined to the chosen rows only, except when they are the sort key.
    by_agent = sort == "agent"
    inner = (
        "SELECT t.* EXCLUDE (search_text)"
        + (", a0.name AS agent_name" if by_agent else "")
        + " FROM current_tools t"
        + (" LEFT JOIN agents a0 ON a0.id = t.agent_id AND t.agent_id <> ''" if by_agent else "")
        + condition
        + f" ORDER BY {order} LIMIT ? OFFSET ?"
    )
    found = rows(
        con,
        "SELECT p.connector_name AS connector, a.name AS agent, p.name, p.title, p.description, p.parameter_count, "
        "p.read_only, p.destructive, p.changed_at AS last_changed_at, p.drift "
        f"FROM ({inner}) p LEFT JOIN agents a ON a.id = p.agent_id AND p.agent_id <> '' ORDER BY {order}",
        [*params, limit, offset],
    )
    return ToolPage(rows=found, total=total, total_is_exact=not (search and total >= SEARCH_COUNT_CAP))


def _scope(
    con: duckdb.DuckDBPyConnection, connector_id: str | None, agent_id: str | None
) -> list[int] | None:
    """The current snapshots a page may show (None: all of them). For an agent, per connector: the
    agent's own list if it has one, else the connector's shared list."""
    if connector_id is None and agent_id is None:
        return None
    sql, params = "SELECT id, connector_id, agent_id FROM tool_snapshots WHERE is_current", []
    if connector_id is not None:
        sql += " AND connector_id = ?"
        params.append(connector_id)
    if agent_id is not None:
        sql += " AND agent_id IN ('', ?)"
        params.append(agent_id)
    found = con.execute(sql, params).fetchall()
    if agent_id is None:
        return sorted(snapshot_id for snapshot_id, _, _ in found)
    chosen: dict[str, int] = {}
    for snapshot_id, connector, owner in found:
        if connector not in chosen or owner == agent_id:
            chosen[connector] = snapshot_id
    return sorted(chosen.values())


def definitions(
    con: duckdb.DuckDBPyConnection, connector_id: str, agent_id: str, name: str | None = None
) -> list[dict[str, Any]]:
    current = con.execute(
        "SELECT id FROM tool_snapshots WHERE connector_id = ? AND agent_id = ? AND is_current",
        [connector_id, agent_id],
    ).fetchone()
    if current is None:
        return []
    sql, params = "SELECT raw FROM tools WHERE snapshot_id = ?", [current[0]]
    if name is not None:
        sql += " AND name = ?"
        params.append(name)
    return [json.loads(raw) for (raw,) in con.execute(sql + " ORDER BY name", params).fetchall()]


def drift(con: duckdb.DuckDBPyConnection, connector_id: str, agent_id: str) -> ToolDrift:
    snapshots = con.execute(
        "SELECT id, synced_at FROM tool_snapshots WHERE connector_id = ? AND agent_id = ? "
        "ORDER BY id DESC LIMIT 2",
        [connector_id, agent_id],
    ).fetchall()
    if len(snapshots) < 2:
        return ToolDrift(connector_id, agent_id, snapshots[0][1] if snapshots else None, None, ())
    (current_id, current_at), (previous_id, previous_at) = snapshots
    current, previous = _definitions_by_name(con, current_id), _definitions_by_name(con, previous_id)
    changes = [ToolChange(n, "added") for n in sorted(current.keys() - previous.keys())]
    changes += [ToolChange(n, "removed") for n in sorted(previous.keys() - current.keys())]
    for name in sorted(current.keys() & previous.keys()):
        now, before = current[name], previous[name]
        if now["def_hash"] == before["def_hash"]:
            continue
        fields = tuple(f for f in _COMPARED_FIELDS if now[f] != before[f]) or ("other",)
        changes.append(ToolChange(name, "changed", fields))
    return ToolDrift(connector_id, agent_id, current_at, previous_at, tuple(changes))


def _definitions_by_name(con: duckdb.DuckDBPyConnection, snapshot_id: int) -> dict[str, dict[str, Any]]:
    found = rows(
        con,
        f"SELECT name, def_hash, {', '.join(_COMPARED_FIELDS)} FROM tools WHERE snapshot_id = ?",
        [snapshot_id],
    )
    return {row["name"]: row for row in found}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _canonical_or_none(value: Any) -> str | None:
    return None if value is None else _canonical(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None
