"""The overview: what is connected, what is broken and what to do about it, in one store session.

The counts, the "needs attention" list with the fix for each item, and the data of the overview's
charts (calls per hour, credential expiries, tools per list) are computed here, not in a view, so
the dashboard, notebooks and tests read the same numbers (`Switchboard.overview`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from core.auth_schemes import auth_scheme
from core.models import AttentionItem, CredentialExpiry, HourlyCalls, Overview, ToolList
from core.services.context import ServiceContext
from core.store import OverviewRows

HOUR = 3600.0
DAY = 24 * HOUR
CONNECTOR_STATUSES = ("connected", "needs_auth", "error", "never_synced")
_SEVERITY_ORDER = {"error": 0, "warning": 1}


class OverviewReader:
    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    async def overview(self, now: float | None = None) -> Overview:
        now = time.time() if now is None else now
        # The activity window starts on an hour boundary, so its first bar is a whole hour.
        since = (now - DAY) // HOUR * HOUR + HOUR
        found = await self._context.db(self._context.store.overview.read, since, HOUR)
        return build_overview(found, now)


def build_overview(found: OverviewRows, now: float) -> Overview:
    connectors = dict.fromkeys(CONNECTOR_STATUSES, 0)
    for row in found.connectors:
        connectors[row["status"]] = connectors.get(row["status"], 0) + 1
    expiries = sorted(
        (
            CredentialExpiry(r["connector"], r["agent"], r["kind"], float(r["expires_at"]), _renews(r))
            for r in found.credentials
            if r["expires_at"] is not None
        ),
        key=lambda e: e.expires_at,
    )
    activity = tuple(
        HourlyCalls(float(r["hour"]), r["connector"], int(r["calls"]), int(r["errors"] or 0))
        for r in found.activity
    )
    tool_lists = tuple(
        ToolList(
            r["connector"],
            r["agent"],
            int(r["tools"]),
            int(r["drifted"] or 0),
            int(r["quarantined"] or 0),
            int(r["pending"] or 0),
        )
        for r in found.tool_lists
    )
    return Overview(
        generated_at=now,
        connectors=connectors,
        credentials_needing_reauth=sum(r["status"] != "connected" for r in found.credentials),
        credentials_expiring=sum(_expiring(e, now) for e in expiries),
        calls_24h=sum(a.calls for a in activity),
        failed_calls_24h=sum(a.errors for a in activity),
        attention=tuple(_attention(found, expiries, tool_lists, activity, now)),
        activity=activity,
        expiries=tuple(expiries),
        tool_lists=tool_lists,
    )


def _renews(credential: dict[str, Any]) -> bool:
    return bool(credential["has_refresh_token"]) or credential["kind"] == "client_credentials"


def _expiring(expiry: CredentialExpiry, now: float) -> bool:
    """Expires (or expired) within a day with nothing to renew it: an operator must re-authorize."""
    return not expiry.renews and expiry.expires_at <= now + DAY


def _attention(
    found: OverviewRows,
    expiries: Iterable[CredentialExpiry],
    tool_lists: Iterable[ToolList],
    activity: Iterable[HourlyCalls],
    now: float,
) -> list[AttentionItem]:
    """One item per problem, most severe first; a (connector, agent) gets one authorization item
    even when both its connector and its credential say it needs one."""
    items: list[AttentionItem] = []
    needs_authorization: set[tuple[str, str | None]] = set()

    def authorize(
        severity: str, kind: str, connector: str, auth_type: str, agent: str | None, problem: str
    ) -> None:
        if (connector, agent) in needs_authorization:
            return
        needs_authorization.add((connector, agent))
        fix = "enter_key" if auth_scheme(auth_type).static_secret else "connect"
        items.append(AttentionItem(severity, kind, connector, agent, problem, fix))

    for credential in found.credentials:
        if credential["status"] != "connected":
            reason = f": {credential['reason']}" if credential["reason"] else ""
            authorize(
                "error",
                "needs_authorization",
                credential["connector"],
                credential["auth_type"],
                credential["agent"],
                f"the credential needs re-authorization{reason}",
            )
    for c in found.connectors:
        shared = c["credential_mode"] == "shared"
        needs_credential = auth_scheme(c["auth_type"]).needs_credential
        if shared and needs_credential and not c["credentials"]:
            # Worse once a sync has been refused for it: something expects it to work.
            severity = "error" if c["status"] == "needs_auth" else "warning"
            authorize(severity, "not_connected", c["name"], c["auth_type"], None, "not connected yet")
        elif shared and c["status"] == "needs_auth":
            authorize("error", "needs_authorization", c["name"], c["auth_type"], None, "needs authorization")
        elif c["status"] == "error":
            problem = (
                f"the last sync failed: {c['last_error']}" if c["last_error"] else "the last sync failed"
            )
            items.append(AttentionItem("error", "sync_failed", c["name"], None, problem, "sync"))
        elif shared and c["status"] == "never_synced":
            items.append(AttentionItem("warning", "never_synced", c["name"], None, "never synced", "sync"))
    auth_types = {c["name"]: c["auth_type"] for c in found.connectors}
    for expiry in expiries:
        if _expiring(expiry, now):
            when = "has expired" if expiry.expires_at <= now else "expires within 24 h"
            authorize(
                "warning",
                "expiring",
                expiry.connector,
                auth_types.get(expiry.connector, "oauth"),
                expiry.agent,
                f"the access token {when} and cannot renew itself",
            )
    for tools in tool_lists:
        if tools.quarantined:
            items.append(
                AttentionItem(
                    "warning",
                    "quarantined",
                    tools.connector,
                    tools.agent,
                    f"{_tools(tools.quarantined)} changed since approval; agents cannot use "
                    f"{'it' if tools.quarantined == 1 else 'them'} until reviewed",
                    "review",
                )
            )
        if tools.pending:
            items.append(
                AttentionItem(
                    "warning",
                    "pending",
                    tools.connector,
                    tools.agent,
                    f"{_tools(tools.pending)} awaiting approval",
                    "review",
                )
            )
    calls: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for hour in activity:
        calls[hour.connector] += hour.calls
        failed[hour.connector] += hour.errors
    for connector, errors in failed.items():
        if errors:
            problem = f"{errors} of {calls[connector]} calls failed in the last 24 h"
            items.append(AttentionItem("warning", "failed_calls", connector, None, problem, "audit"))
    return sorted(items, key=lambda item: _SEVERITY_ORDER.get(item.severity, 2))


def _tools(count: int) -> str:
    return f"{count} tool{'' if count == 1 else 's'}"
