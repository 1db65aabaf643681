"""Tool review: tools whose definition changed since it was approved (quarantined: the gateway hides
and refuses them) or that were never approved, the side-by-side diff of each, and approval.

Pinning is the gateway's (`core.access.AgentAccess`, the same API as `switchboard pinning review /
approve`); this model finds the lists that need a review and turns two definitions into diff rows.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import param

from core.access import ToolReview
from core.errors import ConfigurationError
from core.models import ToolList
from dashboard.models.base import ServiceModel

# The parts of a definition a review always shows, then those shown only when they changed.
ALWAYS_SHOWN = {"description": "Description", "inputSchema": "Input schema", "annotations": "Annotations"}
SHOWN_WHEN_CHANGED = {"title": "Title", "outputSchema": "Output schema"}


@dataclass(frozen=True)
class DiffLine:
    before: str | None  # None: no line on that side (added / removed)
    after: str | None
    kind: str  # same | changed | added | removed


@dataclass(frozen=True)
class DiffSection:
    title: str
    changed: bool
    lines: tuple[DiffLine, ...]


class ToolReviews(ServiceModel):
    queue = param.List(default=[], item_type=ToolList, doc="Tool lists with tools to review.")
    connector = param.String(default=None, allow_None=True, doc="The list under review: its connector…")
    agent = param.String(default=None, allow_None=True, doc="…and its agent (per_agent connectors).")
    reviews = param.List(default=[], item_type=ToolReview, doc="Its tools that are not approved.")
    tool = param.String(default=None, allow_None=True, doc="The tool whose diff is shown.")

    async def load_queue(self) -> list[ToolList]:
        async def lists() -> list[ToolList]:
            overview = await self.services.overview()
            return [t for t in overview.tool_lists if t.quarantined or t.pending]

        return await self._load("queue", lists(), lambda found: setattr(self, "queue", found))

    async def choose(self, connector: str | None, agent: str | None = None) -> list[ToolReview]:
        """Review this list: loads its tools that are not approved and opens the first one."""
        self.param.update(connector=connector, agent=agent, reviews=[], tool=None)

        async def pending() -> list[ToolReview]:
            if not connector:
                return []
            return [
                r for r in await self.services.access().reviews(connector, agent) if r.state != "approved"
            ]

        def show(found: list[ToolReview]) -> None:
            self.param.update(reviews=found, tool=found[0].name if found else None)

        return await self._load("reviews", pending(), show)

    @property
    def current(self) -> ToolReview | None:
        return next((r for r in self.reviews if r.name == self.tool), None)

    @param.depends("tool", "reviews")
    def diff(self) -> list[DiffSection]:
        review = self.current
        return [] if review is None else definition_diff(review.approved, review.current)

    async def approve(self, tools: list[str] | None = None) -> list[str]:
        """Approve these tools' current definitions (None: every one under review); the gateway
        serves them again within a poll interval."""
        if not self.connector:
            raise ConfigurationError("Choose a tool list to review first.")
        approved = await self.services.access().approve(self.connector, tools, self.agent)
        await self.load_queue()
        await self.choose(self.connector, self.agent)
        return approved


def definition_diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[DiffSection]:
    """The parts of two tool definitions side by side, line by line (JSON pretty-printed with sorted
    keys, so a reordered schema is not a change)."""
    sections = []
    for key, title in {**ALWAYS_SHOWN, **SHOWN_WHEN_CHANGED}.items():
        old = None if before is None else _lines(before.get(key))
        new = _lines(after.get(key))
        changed = old != new
        if key in SHOWN_WHEN_CHANGED and not changed:
            continue
        sections.append(DiffSection(title, changed, tuple(_side_by_side(old or [], new))))
    return sections


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _side_by_side(old: list[str], new: list[str]) -> list[DiffLine]:
    rows: list[DiffLine] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [DiffLine(line, line, "same") for line in old[i1:i2]]
        elif op == "delete":
            rows += [DiffLine(line, None, "removed") for line in old[i1:i2]]
        elif op == "insert":
            rows += [DiffLine(None, line, "added") for line in new[j1:j2]]
        else:  # replace: pair the lines up, the longer side's rest as removed / added
            left, right = old[i1:i2], new[j1:j2]
            for k in range(max(len(left), len(right))):
                a = left[k] if k < len(left) else None
                b = right[k] if k < len(right) else None
                rows.append(
                    DiffLine(
                        a,
                        b,
                        "changed"
                        if a is not None and b is not None
                        else ("removed" if b is None else "added"),
                    )
                )
    return rows
