"""A tool list as the store keeps it: canonical JSON, hashes and the derived listing columns.

Pure Python, no database: `prepare` runs before a sync takes any store lock. `def_hash` is the
SHA-256 of a tool's canonical JSON (sorted keys, no spaces), `list_hash` that of the sorted
(name, def_hash) pairs, so an unchanged list is recognised without comparing rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigurationError

# What `prepare` derives per tool: the definition columns of `tools`, and the listing columns that
# only `current_tools` has.
DEFINITION_COLUMNS = (
    "name",
    "title",
    "description",
    "input_schema",
    "output_schema",
    "annotations",
    "raw",
    "def_hash",
)
LISTING_COLUMNS = ("parameter_count", "read_only", "destructive", "search_text")


@dataclass(frozen=True)
class PreparedTools:
    """A tool list turned into columns, ready to insert."""

    columns: dict[str, list[Any]]
    list_hash: str

    @property
    def count(self) -> int:
        return len(self.columns["name"])


def prepare(tools: Sequence[Mapping[str, Any]]) -> PreparedTools:
    columns: dict[str, list[Any]] = {name: [] for name in (*DEFINITION_COLUMNS, *LISTING_COLUMNS)}
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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _canonical_or_none(value: Any) -> str | None:
    return None if value is None else _canonical(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None
