"""The overview's reads: every connector's state, every credential's expiry, each current tool list's
pinning state and the calls per time bucket since a moment — four aggregate queries in one
transaction, whatever the size of the inventory or the audit log (`core/services/overview.py` turns
them into counts and the "needs attention" list). Portable SQL (CASE instead of engine-specific
aggregates)."""

from __future__ import annotations

from core.store.records import OverviewRows
from core.store.repositories.base import Repository


class OverviewRepository(Repository):
    def read(self, since: float, bucket: float) -> OverviewRows:
        """Everything the overview needs; `activity` counts calls from `since` on, per `bucket`
        seconds (its `hour` column is the bucket's start)."""
        with self._store.tx() as tx:
            return OverviewRows(
                connectors=tx.rows(
                    "SELECT c.name, c.auth_type, c.credential_mode, c.status, c.last_error, "
                    "(SELECT count(*) FROM credentials cr WHERE cr.connector_id = c.id) AS credentials "
                    "FROM connectors c ORDER BY c.name",
                ),
                credentials=tx.rows(
                    "SELECT c.name AS connector, c.auth_type, a.name AS agent, cr.kind, cr.status, "
                    "cr.status_reason AS reason, cr.expires_at, cr.refresh_token IS NOT NULL AS has_refresh_token "
                    "FROM credentials cr JOIN connectors c ON c.id = cr.connector_id "
                    "LEFT JOIN agents a ON a.id = cr.agent_id AND cr.agent_id <> '' ORDER BY c.name, a.name",
                ),
                tool_lists=tx.rows(
                    "SELECT t.connector_name AS connector, a.name AS agent, count(*) AS tools, "
                    "sum(CASE WHEN t.drift THEN 1 ELSE 0 END) AS drifted, "
                    "sum(CASE WHEN p.approved_hash <> t.def_hash THEN 1 ELSE 0 END) AS quarantined, "
                    "sum(CASE WHEN p.approved_hash IS NULL THEN 1 ELSE 0 END) AS pending "
                    "FROM current_tools t LEFT JOIN tool_approvals p ON p.connector_id = t.connector_id "
                    "AND p.agent_id = t.agent_id AND p.tool = t.name "
                    "LEFT JOIN agents a ON a.id = t.agent_id AND t.agent_id <> '' "
                    "GROUP BY t.connector_name, a.name ORDER BY t.connector_name, a.name",
                ),
                activity=tx.rows(
                    "SELECT floor(l.called_at / ?) * ? AS hour, coalesce(c.name, '(removed)') AS connector, "
                    "count(*) AS calls, sum(CASE WHEN l.status <> 'ok' THEN 1 ELSE 0 END) AS errors "
                    "FROM audit_log l LEFT JOIN connectors c ON c.id = l.connector_id WHERE l.called_at >= ? "
                    "GROUP BY 1, 2 ORDER BY 1, 2",
                    [bucket, bucket, since],
                ),
            )
