"""Readable, accessible tables: Tabulator with wrapping headers, status badges, text-only cells.

Every table of the dashboard is built here so they share one set of rules:

- Cell text is never markup. Tabulator's default tooltip assigns the cell value to innerHTML, and
  cells hold server-written text (tool names, descriptions, error messages), so tooltips are built
  as text nodes; long text wraps (the `textarea` formatter escapes it) instead of being cut.
- Headers wrap between words, and no column is narrower than its title's longest word, so nothing
  is cut ("t…") at 1280 px; a table too wide for the window scrolls instead.
- A status is a coloured badge *with its text* (colour is never the only signal), built as DOM nodes
  from the cell value, never as HTML.
- Boolean flags are words ("read-only", "⚠ changed"), not Tabulator's tick/cross icons, whose
  `aria-checked` is not allowed on a grid cell.
"""

from __future__ import annotations

import json
import math
import re
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
    "revoked at server": "ok",
    "needs auth": "warn",
    "needs re-auth": "warn",
    "needs_reauth": "warn",
    "quarantined": "warn",
    "pending": "warn",
    "tool_error": "warn",
    "warning": "warn",
    "deleted locally only": "warn",
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


# Tabulator's bold 16 px header text takes up to 11.5 px a character (measured in Chromium), the
# sort arrow's room and the padding 38 px more.
HEADER_CHAR_PX, HEADER_EXTRA_PX = 11.5, 38
BADGE_MIN_WIDTH = 125


def min_width(title: str) -> int:
    """The narrowest a column can be without cutting its title (which wraps between words)."""
    text = re.sub(r"<[^>]+>", "", str(title))  # a button column's title is its label's markup
    return math.ceil(HEADER_CHAR_PX * max((len(word) for word in text.split()), default=0) + HEADER_EXTRA_PX)


def data_table(
    frame,
    *,
    badges: Iterable[str] = (),
    flags: Mapping[str, str] | None = None,
    formatters: Mapping[str, Any] | None = None,
    table_type: type[pn.widgets.Tabulator] = pn.widgets.Tabulator,
    **options: Any,
) -> pn.widgets.Tabulator:
    """A read-only table of `frame`. `badges`: status columns shown as coloured badges; `flags`:
    boolean column -> the word shown when true. Every other column's text wraps (URLs, descriptions,
    errors) and is whole in its tooltip; no column is narrower than its title's longest word."""
    badges, flags, formatters = list(badges), dict(flags or {}), dict(formatters or {})
    titles, buttons = options.get("titles", {}), options.get("buttons", {})
    formatted = {*badges, *flags, *formatters}
    narrowest = {
        **{str(c): min_width(titles.get(c, c)) for c in frame.columns},
        **{b: max(min_width(label), min_width(titles.get(b, ""))) for b, label in buttons.items()},
    }
    for badge in badges:
        narrowest[badge] = max(narrowest[badge], BADGE_MIN_WIDTH)
    columns = [
        {
            "field": field,
            "minWidth": width,
            **({} if field in formatted or field in buttons else {"formatter": "textarea"}),
        }
        for field, width in narrowest.items()
    ]
    widths = {
        field: max(width, narrowest.get(field, 0)) for field, width in options.pop("widths", {}).items()
    }
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
            **{name: flag_formatter(label) for name, label in flags.items()},
            **formatters,
        },
        widths=widths,
        stylesheets=[TABLE_CSS, *options.pop("stylesheets", [])],
        selectable=options.pop("selectable", False),  # a click acts (opens, syncs); it selects nothing
        **options,
    )
