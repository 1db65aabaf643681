"""Readable, accessible tables: Tabulator with wrapping headers, status badges, text-only cells.

Every table of the dashboard is built here so they share one set of rules:

- Cell text is never markup. Tabulator's default tooltip assigns the cell value to innerHTML, and
  cells hold server-written text (tool names, descriptions, error messages), so tooltips are built
  as text nodes; long text wraps (the `textarea` formatter escapes it) instead of being cut.
- Headers wrap instead of being cut ("t…" at 1280 px).
- A status is a coloured badge *with its text* (colour is never the only signal), built as DOM nodes
  from the cell value, never as HTML.
- Boolean flags are words ("read-only", "⚠ changed"), not Tabulator's tick/cross icons, whose
  `aria-checked` is not allowed on a grid cell.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import panel as pn
from panel.io.model import JSCode

TEXT_TOOLTIP = JSCode(
    "function(e, cell) { const tip = document.createElement('div');"
    " tip.textContent = String(cell.getValue() ?? ''); return tip; }"
)

# Status text -> badge tone; anything else is neutral. Shared with `components.status_badge`.
TONES = {
    "connected": "ok",
    "ok": "ok",
    "approved": "ok",
    "active": "ok",
    "synced": "ok",
    "needs auth": "warn",
    "needs re-auth": "warn",
    "needs_reauth": "warn",
    "quarantined": "warn",
    "pending": "warn",
    "tool_error": "warn",
    "warning": "warn",
    "error": "bad",
    "revoked": "bad",
    "failed": "bad",
    "not connected": "idle",
    "never synced": "idle",
    "missing": "idle",
    "expired": "idle",
}

BADGE_FORMATTER = JSCode(
    "function(cell) { const value = String(cell.getValue() ?? ''); if (!value) return '';"
    f" const tones = {json.dumps(TONES)};"
    " const badge = document.createElement('span');"
    " badge.className = 'sb-badge sb-' + (tones[value] || 'idle'); badge.textContent = value;"
    " return badge; }"
)


def flag_formatter(label: str) -> JSCode:
    """A boolean column as `label` where true and nothing where false (text, so screen readers and
    the colour-blind read it too)."""
    return JSCode(f"function(cell) {{ return cell.getValue() ? {json.dumps(label)} : ''; }}")


# Badge colours reach AA contrast (dark text on light tint); Tabulator draws in the widget's shadow
# root, so these rules travel with each table.
TABLE_CSS = """
.tabulator .tabulator-cell { overflow-wrap: anywhere; }
.tabulator .tabulator-col-title-wrap { white-space: normal; overflow-wrap: normal; }
.sb-action { display: inline-block; border: 1px solid #0a58ca; border-radius: 4px; padding: 0 8px;
  color: #0a58ca; cursor: pointer; }
.sb-badge { border-radius: 10px; padding: 1px 8px; font-size: 0.85em; white-space: nowrap; }
.sb-ok { background: #d1e7dd; color: #0a3622; } .sb-warn { background: #fff3cd; color: #664d03; }
.sb-bad { background: #f8d7da; color: #58151c; } .sb-idle { background: #e9ecef; color: #2b2f32; }
"""


def data_table(
    frame,
    *,
    badges: Iterable[str] = (),
    wrap: Iterable[str] = (),
    flags: Mapping[str, str] | None = None,
    formatters: Mapping[str, Any] | None = None,
    table_type: type[pn.widgets.Tabulator] = pn.widgets.Tabulator,
    **options: Any,
) -> pn.widgets.Tabulator:
    """A read-only table of `frame`. `badges`: status columns shown as coloured badges; `wrap`:
    columns of long text that wrap (URLs, descriptions, errors); `flags`: boolean column -> the word
    shown when true. Every cell's full text is in its tooltip."""
    columns = [{"field": name, "formatter": "textarea"} for name in wrap]
    return table_type(
        frame,
        show_index=False,
        disabled=True,
        sizing_mode="stretch_width",
        layout=options.pop("layout", "fit_columns"),
        configuration={
            "columnDefaults": {"tooltip": TEXT_TOOLTIP, "headerWordWrap": True},
            "columns": columns,
            **options.pop("configuration", {}),
        },
        formatters={
            **{name: BADGE_FORMATTER for name in badges},
            **{name: flag_formatter(label) for name, label in (flags or {}).items()},
            **(formatters or {}),
        },
        stylesheets=[TABLE_CSS, *options.pop("stylesheets", [])],
        **options,
    )
