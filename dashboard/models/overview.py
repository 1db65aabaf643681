"""The overview: headline counts, what needs attention with its one-click fix, and the charts' data.

The numbers come from `Switchboard.overview()` (one store read); this model only shapes them for the
page: tiles with a tone, chart frames, and the fix of each attention item as an action — a
Connect (the browser to the authorization server, or an immediate outcome), a sync, or a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import pandas as pd
import param

from core.errors import ConfigurationError
from core.models import AttentionItem, Overview, SyncResult
from dashboard.models.base import ConnectAction, ServiceModel, connect_or_authorize
from dashboard.navigation import agent_path

OVERVIEW_PATH = "/"
MIN_REFRESH_SECONDS = 2


# Count (`Overview.counts()`) -> its group, its label, its tone when not zero (ok and idle always),
# and the page that explains it.
TILES = {
    "connectors_connected": ("Connectors", "connected", "ok", "connectors"),
    "connectors_needs_auth": ("Connectors", "need authorization", "warn", "connectors"),
    "connectors_error": ("Connectors", "failing", "bad", "connectors"),
    "connectors_never_synced": ("Connectors", "never synced", "idle", "connectors"),
    "credentials_needing_reauth": ("Credentials", "need re-authorization", "bad", "health"),
    "credentials_expiring": ("Credentials", "expire within 24 h", "warn", "health"),
    "tools": ("Tools", "tools", "idle", "tools"),
    "tools_drifted": ("Tools", "changed in the last sync", "warn", "tools"),
    "tools_quarantined": ("Tools", "quarantined", "warn", "review"),
    "tools_pending": ("Tools", "awaiting approval", "warn", "review"),
    "calls_24h": ("Calls (24 h)", "calls", "idle", "audit"),
    "failed_calls_24h": ("Calls (24 h)", "failed", "bad", "audit"),
}


@dataclass(frozen=True)
class Tile:
    """One headline number: `tone` ok | warn | bad | idle colours it, the label says it in words."""

    key: str  # its name in `Overview.counts()`
    label: str
    value: int
    tone: str
    link: str


@dataclass(frozen=True)
class Fix:
    """What an attention item's button does: `link` (a page to open) or `run` (connect or sync);
    `needs`: the services action it comes down to (`core/roles.py`), None for pages anyone may read."""

    label: str
    link: str | None = None
    needs: str | None = None


class OverviewModel(ServiceModel):
    overview = param.ClassSelector(class_=Overview, default=None, allow_None=True, doc="As last read.")
    refresh_seconds = param.Number(default=15, bounds=(MIN_REFRESH_SECONDS, 3600), doc="Periodic refresh.")

    async def refresh(self) -> Overview:
        return await self._load("overview", self.services.overview(), lambda o: setattr(self, "overview", o))

    # --- shaping for the page -------------------------------------------------------------------

    @param.depends("overview")
    def tiles(self) -> dict[str, list[Tile]]:
        """Every headline number of `Overview.counts()`, by group."""
        if self.overview is None:
            return {}
        groups: dict[str, list[Tile]] = {}
        for key, value in self.overview.counts().items():
            group, label, alarm, link = TILES[key]
            tone = alarm if alarm in ("ok", "idle") or value else "ok"
            groups.setdefault(group, []).append(Tile(key, label, value, tone, link))
        return groups

    @param.depends("overview")
    def activity_frame(self) -> pd.DataFrame:
        """Calls and failed calls per hour and connector (hour as local time)."""
        rows = [
            {"hour": _local(a.hour), "connector": a.connector, "calls": a.calls, "errors": a.errors}
            for a in (self.overview.activity if self.overview else ())
        ]
        return pd.DataFrame(rows, columns=["hour", "connector", "calls", "errors"])

    @param.depends("overview")
    def expiry_frame(self) -> pd.DataFrame:
        rows = [
            {
                "credential": f"{e.connector} ({e.agent or 'shared'})",
                "expires": _local(e.expires_at),
                "renews": "renews itself" if e.renews else "needs re-authorization",
            }
            for e in (self.overview.expiries if self.overview else ())
        ]
        return pd.DataFrame(rows, columns=["credential", "expires", "renews"])

    @param.depends("overview")
    def tools_frame(self) -> pd.DataFrame:
        """Tools per connector (every list of it summed): usable, quarantined, awaiting approval."""
        frame = pd.DataFrame(
            [
                {
                    "connector": t.connector,
                    "approved": t.tools - t.quarantined - t.pending,
                    "quarantined": t.quarantined,
                    "pending": t.pending,
                }
                for t in (self.overview.tool_lists if self.overview else ())
            ],
            columns=["connector", "approved", "quarantined", "pending"],
        )
        return frame.groupby("connector", as_index=False, sort=True).sum()

    # --- fixes ----------------------------------------------------------------------------------

    def fix(self, item: AttentionItem) -> Fix:
        """The button of an item: its label, and a link unless it runs here (connect, sync)."""
        who = f" for {item.agent}" if item.agent else ""
        if item.fix == "connect":
            verb = "Connect" if item.kind == "not_connected" else "Reconnect"
            return Fix(f"{verb} {item.connector}{who}", needs="connect")
        if item.fix == "sync":
            return Fix(f"Sync {item.connector}", needs="sync_many")
        if item.fix == "enter_key":
            if item.agent:  # the agent page's key field
                return Fix(f"Enter a new key for {item.connector}{who}", agent_path(item.agent), "set_secret")
            # A shared key is entered in the connector's edit form.
            link = "/connectors?" + urlencode({"edit": item.connector})
            return Fix(f"Enter a new key for {item.connector}", link, "update_connector")
        if item.fix == "review":
            query = {"connector": item.connector, **({"agent": item.agent} if item.agent else {})}
            return Fix(f"Review the tools of {item.connector}{who}", "/review?" + urlencode(query))
        return Fix(
            f"Open the audit log of {item.connector}", "/audit?" + urlencode({"connector": item.connector})
        )

    async def connect(self, item: AttentionItem) -> ConnectAction:
        """Re-authorize: OAuth sends the browser to the authorization server and back here."""
        connector = await self.services.get_connector(item.connector)
        action = await connect_or_authorize(
            self.services, connector.name, connector.auth_type, item.agent, OVERVIEW_PATH
        )
        if action.outcome is not None:
            await self.refresh()
        return action

    async def sync(self, item: AttentionItem) -> list[SyncResult]:
        if item.fix != "sync":
            raise ConfigurationError(f"{item.connector} needs {item.fix}, not a sync; reload the page")
        try:
            return [r async for r in self.services.sync_many([item.connector], item.agent)]
        finally:
            await self.refresh()


def _local(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch)
