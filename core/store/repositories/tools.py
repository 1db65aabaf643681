"""Tool snapshots: recording a sync's tool list, the inventory page query, and drift.

A snapshot is a *distinct* tool list of (connector, agent): syncing the same list again only moves
its `verified_at`, so "the previous snapshot" is always the last list that differed and drift shows
the latest real change. Rows are bulk-loaded (`Engine.bulk_insert`: Arrow on DuckDB, COPY on
PostgreSQL), a fixed number of statements per batch however many servers synced.

Inventory pages read only `current_tools` — the narrow listing columns of the current snapshots, with
`search_text` lower-cased once at write time — never the history in `tools` nor its JSON columns.
DuckDB prunes with zone maps (rows of one snapshot arrive together); PostgreSQL with its indexes,
a trigram index for text search among them. On PostgreSQL recording takes a named lock, so two
processes syncing one connector cannot both mark their list current.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import ConfigurationError, NotFoundError
from core.models import ToolPage
from core.store.engine import Tx
from core.store.records import SnapshotResult, ToolChange, ToolDrift
from core.store.repositories.base import Repository
from core.store.tool_lists import DEFINITION_COLUMNS, PreparedTools, prepare

MAX_PAGE = 1000
# A text search stops counting here: a common word in a 1M-tool inventory would otherwise scan every
# row just to say how many pages there are (52 ms vs 2 ms measured); nobody pages that far anyway.
# On an engine without cheap counts (PostgreSQL: a row store) every filtered count stops here.
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
_LISTING = (
    "connector_id, connector_name, agent_id, snapshot_id, name, title, description, parameter_count, "
    "read_only, destructive, def_hash, first_seen_at, changed_at, drift"
)
# (connector, agent) pairs passed as two parallel list parameters, zipped by unnest.
_OWNERS = "(SELECT unnest(?::VARCHAR[]) AS connector_id, unnest(?::VARCHAR[]) AS agent_id) owners"


class ToolRepository(Repository):
    def __init__(self, store: Any, *, snapshots_kept: int) -> None:
        super().__init__(store)
        self._keep = max(snapshots_kept, 2)

    # --- recording ------------------------------------------------------------------------------

    def record_syncs(
        self, syncs: Sequence[tuple[str, str, Sequence[Mapping[str, Any]]]], *, synced_at: float | None = None
    ) -> list[SnapshotResult | ConfigurationError]:
        """Record several syncs' tool lists — (connector id, agent id or '', wire tools) each — in one
        transaction with a fixed number of statements, and mark the connectors synced. A list the
        store refuses (a tool without a name, an unknown connector or agent) comes back as its
        error; the others are recorded. Duplicate tool names: the first wins."""
        outcomes: list[Any] = []
        for _, _, tools in syncs:  # JSON and hashing before the transaction
            try:
                outcomes.append(prepare(tools))
            except ConfigurationError as exc:
                outcomes.append(exc)
        now = synced_at or time.time()
        with self._store.tx() as tx:
            known = set(
                tx.column(
                    "SELECT id FROM connectors WHERE id IN (SELECT unnest(?::VARCHAR[])) UNION ALL "
                    "SELECT id FROM agents WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                    [[c for c, _, _ in syncs], [a for _, a, _ in syncs if a]],
                )
            )
            batch, positions = [], []
            for position, (connector_id, agent_id, _) in enumerate(syncs):
                if isinstance(outcomes[position], ConfigurationError):
                    continue
                if connector_id not in known:
                    outcomes[position] = NotFoundError(f"no connector {connector_id!r}")
                elif agent_id and agent_id not in known:
                    outcomes[position] = NotFoundError(f"no agent {agent_id!r}")
                else:
                    batch.append((connector_id, agent_id, outcomes[position]))
                    positions.append(position)
            if batch:
                for position, result in zip(positions, self.record(tx, batch, now), strict=True):
                    outcomes[position] = result
                self._store.connectors.mark_synced(tx, [c for c, _, _ in batch], now)
        return outcomes

    def record_sync(
        self,
        connector_id: str,
        agent_id: str,
        tools: Sequence[Mapping[str, Any]],
        *,
        synced_at: float | None = None,
    ) -> SnapshotResult:
        """One sync's tool list (see `record_syncs`); a list the store refuses raises its error."""
        (outcome,) = self.record_syncs([(connector_id, agent_id, tools)], synced_at=synced_at)
        if isinstance(outcome, ConfigurationError):
            raise outcome
        return outcome

    def record(
        self, tx: Tx, lists: Sequence[tuple[str, str, PreparedTools]], now: float
    ) -> list[SnapshotResult]:
        """Record prepared tool lists of several (connector id, agent id or '') owners that exist."""
        owners = [(connector_id, agent_id) for connector_id, agent_id, _ in lists]
        if len(set(owners)) != len(owners):
            raise ConfigurationError("one tool list per connector and agent in a batch")
        tx.lock("tool_snapshots")
        current = {
            (c, a): (snapshot_id, list_hash)
            for c, a, snapshot_id, list_hash in tx.execute(
                f"SELECT s.connector_id, s.agent_id, s.id, s.hash FROM tool_snapshots s JOIN {_OWNERS} "
                "ON s.connector_id = owners.connector_id AND s.agent_id = owners.agent_id WHERE s.is_current",
                _owner_params(owners),
            ).fetchall()
        }
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
            tx.execute(
                "UPDATE tool_snapshots SET verified_at = ? WHERE id IN (SELECT unnest(?::BIGINT[]))",
                [now, unchanged],
            )
        if changed:
            written = self._write(
                tx, [lists[p] for p in changed], [current.get(owners[p]) for p in changed], now
            )
            for position, result in zip(changed, written, strict=True):
                results[position] = result
        return results  # type: ignore[return-value]

    def _write(
        self, tx: Tx, lists: list[tuple[str, str, PreparedTools]], current: list[tuple | None], now: float
    ) -> list[SnapshotResult]:
        replaced = [c[0] for c in current if c is not None]
        previous: dict[int, dict[str, tuple[str, float, float]]] = {}
        if replaced:
            for snapshot_id, name, def_hash, first_seen, changed_at in tx.execute(
                "SELECT snapshot_id, name, def_hash, first_seen_at, changed_at FROM tools "
                "WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))",
                [replaced],
            ).fetchall():
                previous.setdefault(snapshot_id, {})[name] = (def_hash, first_seen, changed_at)
        new_ids = tx.column(tx.engine.id_series("tool_snapshot_ids"), [len(lists)])
        names = dict(
            tx.execute(
                "SELECT id, name FROM connectors WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                [sorted({c for c, _, _ in lists})],
            ).fetchall()
        )
        tools: dict[str, list[Any]] = {}
        results = []
        for (connector_id, agent_id, prepared), before_snapshot, snapshot_id in zip(
            lists, current, new_ids, strict=True
        ):
            before = previous.get(before_snapshot[0], {}) if before_snapshot else {}
            counts, derived = _compare(prepared, before, had_list=before_snapshot is not None, now=now)
            results.append(SnapshotResult(snapshot_id, prepared.count, *counts, unchanged=False))
            owner = {
                "snapshot_id": snapshot_id,
                "connector_id": connector_id,
                "connector_name": names[connector_id],
                "agent_id": agent_id,
            }
            for name, values in {**prepared.columns, **derived}.items():
                tools.setdefault(name, []).extend(values)
            for name, value in owner.items():
                tools.setdefault(name, []).extend([value] * prepared.count)
        if replaced:
            tx.execute(
                "UPDATE tool_snapshots SET is_current = false WHERE id IN (SELECT unnest(?::BIGINT[]))",
                [replaced],
            )
            tx.execute(
                "DELETE FROM current_tools WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))", [replaced]
            )
        tx.bulk_insert(
            "tool_snapshots",
            {
                "id": new_ids,
                "connector_id": [c for c, _, _ in lists],
                "agent_id": [a for _, a, _ in lists],
                "synced_at": [now] * len(lists),
                "verified_at": [now] * len(lists),
                "tool_count": [p.count for _, _, p in lists],
                "hash": [p.list_hash for _, _, p in lists],
                "is_current": [True] * len(lists),
            },
        )
        if tools.get("name"):
            history = ("snapshot_id", *DEFINITION_COLUMNS, "first_seen_at", "changed_at")
            tx.bulk_insert("tools", {c: tools[c] for c in history})
            tx.bulk_insert("current_tools", {c: tools[c] for c in [*_LISTING.split(", "), "search_text"]})
        self._prune(tx, [(c, a) for c, a, _ in lists])
        return results

    def _prune(self, tx: Tx, owners: list[tuple[str, str]]) -> None:
        old = tx.column(
            "SELECT id FROM (SELECT s.id, row_number() OVER (PARTITION BY s.connector_id, s.agent_id "
            f"ORDER BY s.id DESC) AS newest FROM tool_snapshots s JOIN {_OWNERS} "
            "ON s.connector_id = owners.connector_id AND s.agent_id = owners.agent_id) ranked WHERE newest > ?",
            [*_owner_params(owners), self._keep],
        )
        if old:
            tx.execute("DELETE FROM tools WHERE snapshot_id IN (SELECT unnest(?::BIGINT[]))", [old])
            tx.execute("DELETE FROM tool_snapshots WHERE id IN (SELECT unnest(?::BIGINT[]))", [old])

    # --- reading --------------------------------------------------------------------------------

    def page(
        self,
        *,
        connector_id: str | None = None,
        agent_id: str | None = None,
        search: str | None = None,
        read_only: bool | None = None,
        destructive: bool | None = None,
        drift: bool | None = None,
        sort: str = "connector",
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> ToolPage:
        """One page of the current tool inventory and the total matching. With `agent_id`: what that
        agent sees (its own list where a connector has one, else the connector's). `search`:
        case-insensitive substring of name, title or description. Sort keys: `SORT_KEYS`."""
        if sort not in SORT_KEYS:
            raise ConfigurationError(f"cannot sort tools by {sort!r}; use one of {', '.join(SORT_KEYS)}")
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise ConfigurationError(f"page limit must be 1..{MAX_PAGE} and offset >= 0")
        with self._store.tx() as tx:
            where, params = [], []
            scope = current_lists(tx, connector_id, agent_id)
            if scope is not None:
                if not scope:
                    return ToolPage(rows=[], total=0)
                where.append(tx.engine.among("t.snapshot_id", "BIGINT"))
                params.append(scope)
            text = search.strip().lower() if search else ""
            if text:
                condition, values = tx.engine.search_condition("t.search_text", text)
                where.append(condition)
                params.extend(values)
            for column, value in (("read_only", read_only), ("destructive", destructive), ("drift", drift)):
                if value is not None:  # a flag that is unset (NULL) matches neither True nor False
                    where.append(f"t.{column} = ?")
                    params.append(value)
            condition = (" WHERE " + " AND ".join(where)) if where else ""
            order = f"{SORT_KEYS[sort]} {'DESC' if descending else 'ASC'} NULLS LAST, connector_name, agent_id, name"
            rows_of = functools.partial(
                _page_rows, tx, order=order, by_agent=sort == "agent", limit=limit, offset=offset
            )
            capped = False
            if len(where) == (0 if scope is None else 1):
                # Only a scope: the snapshots know their sizes, no need to count rows.
                total = tx.scalar(
                    "SELECT coalesce(sum(tool_count), 0) FROM tool_snapshots WHERE is_current"
                    + (" AND id IN (SELECT unnest(?::BIGINT[]))" if scope is not None else ""),
                    [scope] if scope is not None else [],
                )
                found = rows_of("current_tools t", condition, params)
            elif tx.engine.exact_counts:
                capped = bool(text)
                total = (
                    tx.scalar(
                        f"SELECT count(*) FROM (SELECT 1 FROM current_tools t{condition} LIMIT ?) capped",
                        [*params, SEARCH_COUNT_CAP],
                    )
                    if capped
                    else tx.scalar("SELECT count(*) FROM current_tools t" + condition, params)
                )
                found = rows_of("current_tools t", condition, params)
            else:
                # A row store: take the matches first (by the filter's own index, at most the cap of
                # them), counting them on the way, and sort those; when there are more than the cap,
                # walk the sort order instead, which finds one page of common matches quickly.
                capped = True
                fenced = f"(SELECT * FROM current_tools t{condition} LIMIT ?) t"
                found = rows_of(fenced, "", [*params, SEARCH_COUNT_CAP], count_matches=True)
                total = (
                    found[0]["matches"]
                    if found
                    else tx.scalar(
                        f"SELECT count(*) FROM (SELECT 1 FROM current_tools t{condition} LIMIT ?) capped",
                        [*params, SEARCH_COUNT_CAP],
                    )
                )
                if total >= SEARCH_COUNT_CAP:
                    found = rows_of("current_tools t", condition, params)
                for row in found:
                    row.pop("matches", None)
            return ToolPage(
                rows=found, total=int(total), total_is_exact=not (capped and total >= SEARCH_COUNT_CAP)
            )

    def definitions(self, connector_id: str, agent_id: str = "") -> list[dict[str, Any]]:
        """The wire definitions, by name, in the current list `agent_id` sees on the connector: the
        agent's own where one was recorded, else the shared one ('' for the shared list)."""
        return self._definitions(connector_id, agent_id, None)

    def definition(self, connector_id: str, agent_id: str, name: str) -> dict[str, Any]:
        """One tool's wire definition in the list `agent_id` sees (see `definitions`)."""
        found = self._definitions(connector_id, agent_id, name)
        if not found:
            connector = self._store.connectors.get(connector_id).name
            raise NotFoundError(f"no tool {name!r} on connector {connector!r}", hint="sync the connector")
        return found[0]

    def _definitions(self, connector_id: str, agent_id: str, name: str | None) -> list[dict[str, Any]]:
        with self._store.tx() as tx:
            current = tx.scalar(
                "SELECT id FROM tool_snapshots WHERE connector_id = ? AND agent_id = ? AND is_current",
                [connector_id, _list_owner(tx, connector_id, agent_id)],
            )
            if current is None:
                return []
            sql, params = "SELECT raw FROM tools WHERE snapshot_id = ?", [current]
            if name is not None:
                sql += " AND name = ?"
                params.append(name)
            return [json.loads(raw) for raw in tx.column(sql + " ORDER BY name", params)]

    def drift(self, connector_id: str, agent_id: str = "") -> ToolDrift:
        """Tools added, removed or changed (and which fields) between the last two distinct lists of
        the list `agent_id` sees (see `definitions`)."""
        with self._store.tx() as tx:
            agent_id = _list_owner(tx, connector_id, agent_id)
            snapshots = tx.execute(
                "SELECT id, synced_at FROM tool_snapshots WHERE connector_id = ? AND agent_id = ? "
                "ORDER BY id DESC LIMIT 2",
                [connector_id, agent_id],
            ).fetchall()
            if len(snapshots) < 2:
                return ToolDrift(connector_id, agent_id, snapshots[0][1] if snapshots else None, None, ())
            (current_id, current_at), (previous_id, previous_at) = snapshots
            current, previous = _by_name(tx, current_id), _by_name(tx, previous_id)
        changes = [ToolChange(n, "added") for n in sorted(current.keys() - previous.keys())]
        changes += [ToolChange(n, "removed") for n in sorted(previous.keys() - current.keys())]
        for name in sorted(current.keys() & previous.keys()):
            now, before = current[name], previous[name]
            if now["def_hash"] == before["def_hash"]:
                continue
            fields = tuple(f for f in _COMPARED_FIELDS if now[f] != before[f]) or ("other",)
            changes.append(ToolChange(name, "changed", fields))
        return ToolDrift(connector_id, agent_id, current_at, previous_at, tuple(changes))


def _page_rows(
    tx: Tx,
    source: str,
    condition: str,
    params: list[Any],
    *,
    order: str,
    by_agent: bool,
    limit: int,
    offset: int,
    count_matches: bool = False,
) -> list[dict[str, Any]]:
    """One page of `source` (current_tools as `t`, or a subquery of it). The page is chosen on
    current_tools alone (so the top-N can prune with its running bound); agent names are joined to
    the chosen rows only, except when they are the sort key. `count_matches`: each row also carries
    how many rows `source` has (`matches`)."""
    inner = (
        f"SELECT {', '.join('t.' + c for c in _LISTING.split(', '))}"
        + (", count(*) OVER () AS matches" if count_matches else "")
        + (", a0.name AS agent_name" if by_agent else "")
        + f" FROM {source}"
        + (" LEFT JOIN agents a0 ON a0.id = t.agent_id AND t.agent_id <> ''" if by_agent else "")
        + condition
        + f" ORDER BY {order} LIMIT ? OFFSET ?"
    )
    return tx.rows(
        "SELECT p.connector_name AS connector, a.name AS agent, p.name, p.title, p.description, "
        "p.parameter_count, p.read_only, p.destructive, p.changed_at AS last_changed_at, p.drift"
        + (", p.matches" if count_matches else "")
        + f" FROM ({inner}) p LEFT JOIN agents a ON a.id = p.agent_id AND p.agent_id <> '' ORDER BY {order}",
        [*params, limit, offset],
    )


def _list_owner(tx: Tx, connector_id: str, agent_id: str) -> str:
    """Whose list `agent_id` sees on a connector: its own if one was recorded, else the shared one."""
    if agent_id and tx.scalar(
        "SELECT 1 FROM tool_snapshots WHERE connector_id = ? AND agent_id = ? AND is_current",
        [connector_id, agent_id],
    ):
        return agent_id
    return ""


def _owner_params(owners: list[tuple[str, str]]) -> list[list[str]]:
    return [[c for c, _ in owners], [a for _, a in owners]]


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


def current_lists(tx: Tx, connector_id: str | None, agent_id: str | None) -> list[int] | None:
    """The current snapshots of a connector and/or as an agent sees them (None: all of them). For an
    agent, per connector: the agent's own list if it has one, else the connector's shared list."""
    if connector_id is None and agent_id is None:
        return None
    sql, params = "SELECT id, connector_id, agent_id FROM tool_snapshots WHERE is_current", []
    if connector_id is not None:
        sql += " AND connector_id = ?"
        params.append(connector_id)
    if agent_id is not None:
        sql += " AND agent_id IN ('', ?)"
        params.append(agent_id)
    found = tx.execute(sql, params).fetchall()
    if agent_id is None:
        return sorted(snapshot_id for snapshot_id, _, _ in found)
    chosen: dict[str, int] = {}
    for snapshot_id, connector, owner in found:
        if connector not in chosen or owner == agent_id:
            chosen[connector] = snapshot_id
    return sorted(chosen.values())


def _by_name(tx: Tx, snapshot_id: int) -> dict[str, dict[str, Any]]:
    found = tx.rows(
        f"SELECT name, def_hash, {', '.join(_COMPARED_FIELDS)} FROM tools WHERE snapshot_id = ?",
        [snapshot_id],
    )
    return {row["name"]: row for row in found}
