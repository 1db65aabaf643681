"""Audit log, credential health and the auth trace of a connector's last connection attempt."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import param

from core.models import CredentialInfo
from dashboard.models.base import ServiceModel, WithChoices
from dashboard.models.formatting import NEVER, format_expiry, format_scopes, format_time

# Row key → column title, in display order; other keys (internal ids) are not shown.
AUDIT_COLUMNS = {
    "called_at": "time",
    "agent": "agent",
    "connector": "server",
    "tool": "tool",
    "status": "status",
    "latency_ms": "latency (ms)",
    "error": "error",
    "arguments": "arguments",
    "operator": "operator",
    "credential_fingerprint": "credential",
}
TRACE_COLUMNS = {
    "recorded_at": "time",
    "step": "step",
    "method": "method",
    "url": "url",
    "http_status": "status",
    "duration_ms": "duration (ms)",
    "detail": "detail",
}


class AuditLog(WithChoices):
    """The most recent tool calls and credential events, newest first."""

    connector = param.String(default=None, allow_None=True)
    agent = param.String(default=None, allow_None=True)
    limit = param.Integer(default=200, bounds=(1, 5000))
    entries = param.List(default=[], doc="Rows as the services return them.")

    async def refresh(self) -> list[dict[str, Any]]:
        entries = self.services.audit(limit=self.limit, connector=self.connector, agent=self.agent)
        return await self._load("entries", entries, lambda found: self.param.update(entries=found))

    @param.depends("entries")
    def frame(self) -> pd.DataFrame:
        return plain_frame(self.entries, AUDIT_COLUMNS)


class CredentialHealth(ServiceModel):
    """Every stored credential: status, expiry, last refresh, last 401/403, whether it needs re-auth."""

    credentials = param.List(default=[], item_type=CredentialInfo)

    async def refresh(self) -> list[CredentialInfo]:
        return await self._load(
            "credentials", self.services.health(), lambda found: self.param.update(credentials=found)
        )

    @param.depends("credentials")
    def frame(self) -> pd.DataFrame:
        rows = [
            {
                "connector": c.connector,
                "agent": c.agent or "(shared)",
                "kind": c.kind,
                "status": c.status,
                "needs re-auth": "yes" if c.status == "needs_reauth" else "",
                "expires": format_expiry(c.expires_at),
                "last refresh": format_time(c.last_refresh_at),
                "last 401": format_time(c.last_401_at),
                "last 403": format_time(c.last_403_at),
                "scopes": format_scopes(c.scopes),
                "fingerprint": c.fingerprint or NEVER,
                "reason": c.reason or "",
            }
            for c in self.credentials
        ]
        columns = [
            "connector",
            "agent",
            "kind",
            "status",
            "needs re-auth",
            "expires",
            "last refresh",
            "last 401",
            "last 403",
            "scopes",
            "fingerprint",
            "reason",
        ]
        return pd.DataFrame(rows, columns=columns)


class AuthTrace(WithChoices):
    """The discovery, registration and token steps of one connector's last connection attempt."""

    connector = param.String(default=None, allow_None=True)
    agent = param.String(default=None, allow_None=True, doc="None: the shared credential's attempt.")
    steps = param.List(default=[])

    async def load(self) -> list[dict[str, Any]]:
        async def steps() -> list[dict[str, Any]]:
            return await self.services.auth_trace(self.connector, agent=self.agent) if self.connector else []

        return await self._load("steps", steps(), lambda found: self.param.update(steps=found))

    @param.depends("steps")
    def frame(self) -> pd.DataFrame:
        return plain_frame(self.steps, TRACE_COLUMNS)


def plain_frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """The `columns` of `rows` under their titles: times readable, numbers rounded, nested values as JSON."""
    return pd.DataFrame(
        [{title: _cell(key, row.get(key)) for key, title in columns.items()} for row in rows],
        columns=list(columns.values()),
    )


def _cell(key: str, value: Any) -> Any:
    if value is None:
        return ""
    if key.endswith("_at"):
        return format_time(value) if isinstance(value, (int, float)) else str(value)
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value
