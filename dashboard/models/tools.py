"""The tool inventory: one page at a time from the store, filtered, searched and sorted there."""

from __future__ import annotations

from typing import Any

import pandas as pd
import param

from core.models import ToolPage
from dashboard.models.base import WithChoices
from dashboard.models.formatting import format_time

# Columns of `rows`, named like the services' row keys so sorters and flag filters pass straight
# through to `tool_page`.
COLUMNS = [
    "connector",
    "agent",
    "name",
    "description",
    "parameter_count",
    "read_only",
    "destructive",
    "last_changed_at",
    "drift",
]
FLAGS = ("read_only", "destructive", "drift")  # the boolean filters `tool_page` understands
SORTABLE = ("connector", "agent", "name", "parameter_count", "last_changed_at")


class ToolInventory(WithChoices):
    """All connectors' tools, or one connector's, or what one agent sees; `rows` holds the current page."""

    connector = param.String(default=None, allow_None=True, doc="Only this connector's tools.")
    agent = param.String(
        default=None, allow_None=True, doc="What this agent sees (its own and shared tools)."
    )
    search = param.String(default="", doc="Text in the name, title or description.")
    filters = param.Dict(default={}, doc="read_only / destructive / drift → True or False; absent: either.")
    sort = param.Selector(default="connector", objects=list(SORTABLE))
    descending = param.Boolean(default=False)
    page = param.Integer(default=1, bounds=(1, None), doc="1-based page number.")
    page_size = param.Integer(default=25, bounds=(1, 500))
    rows = param.DataFrame(default=pd.DataFrame(columns=COLUMNS), doc="The current page, indexed by offset.")
    total = param.Integer(default=0, doc="Tools matching the query, over all pages.")
    total_is_exact = param.Boolean(default=True, doc="False: a search matched at least `total` tools.")
    definition = param.Dict(default=None, allow_None=True, doc="Full definition of the opened tool.")
    opened = param.Dict(default=None, allow_None=True, doc="connector, tool and agent of the opened tool.")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def query(self, **changes: Any) -> None:
        """Change what is asked for; anything but the page itself starts again at page 1."""
        if "page" not in changes:
            changes["page"] = 1
        self.param.update(**changes)

    async def load(self) -> pd.DataFrame:
        async def page() -> tuple[ToolPage, pd.DataFrame]:
            found = await self.services.tool_page(
                connector=self.connector,
                agent=self.agent,
                search=self.search or None,
                filters={k: bool(v) for k, v in self.filters.items() if k in FLAGS and v is not None} or None,
                sort=self.sort,
                descending=self.descending,
                offset=self.offset,
                limit=self.page_size,
            )
            frame = pd.DataFrame([_display(row) for row in found.rows], columns=COLUMNS)
            frame.index = pd.RangeIndex(self.offset, self.offset + len(frame))
            return found, frame

        _, frame = await self._load("page", page(), self._show_page)
        return frame

    def _show_page(self, loaded: tuple[ToolPage, pd.DataFrame]) -> None:
        found, frame = loaded
        # total first: whoever watches `rows` reads the page count from it.
        self.total_is_exact = found.total_is_exact
        self.total = found.total
        self.rows = frame

    async def open(self, connector: str, tool: str, agent: str | None = None) -> dict[str, Any]:
        """Load the full wire definition of one tool into `definition`."""
        definition = await self.services.tool_definition(connector, tool, agent=agent)
        self.param.update(
            opened={"connector": connector, "tool": tool, "agent": agent}, definition=definition
        )
        return definition


def _display(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "connector": row.get("connector"),
        "agent": row.get("agent") or "",
        "name": row.get("name"),
        "description": row.get("description") or row.get("title") or "",
        "parameter_count": row.get("parameter_count") or 0,
        "read_only": bool(row.get("read_only")),
        "destructive": bool(row.get("destructive")),
        "last_changed_at": format_time(row.get("last_changed_at")),
        "drift": bool(row.get("drift")),
    }
