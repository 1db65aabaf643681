"""The page around every view: Panel's Bootstrap template with the navigation in its header.

The navigation sits in the header (an ordinary `<nav>` list) rather than in the template's sidebar,
whose `<ul>` holds `<div>`s (axe-core: list, WCAG 1.3.1) and costs tables 220 px of a 1280 px screen.
`assets/template.html` extends the template with a fix for Tabulator's grid markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import panel as pn

from core.roles import Principal

TEMPLATE_FILE = Path(__file__).resolve().parents[1] / "assets" / "template.html"

NAVIGATION_CSS = """
.sb-nav { display: flex; flex-wrap: wrap; gap: 2px 4px; list-style: none; margin: 0; padding: 0; }
.sb-nav a { color: #fff; padding: 6px 8px; text-decoration: none; white-space: nowrap; }
.sb-nav a:hover, .sb-nav a:focus { text-decoration: underline; }
.sb-nav a[aria-current="page"] { font-weight: 700; text-decoration: underline; text-underline-offset: 6px; }
"""


class DashboardTemplate(pn.template.BootstrapTemplate):
    _template = TEMPLATE_FILE


def navigation(pages: Mapping[str, str], active: str) -> pn.pane.HTML:
    """Links to `pages` (route -> label); the current one is marked for assistive technology too."""
    links = "".join(
        f"<li><a href='{html.escape(route)}'"
        + (" aria-current='page'" if route == active else "")
        + f">{html.escape(label)}</a></li>"
        for route, label in pages.items()
    )
    return pn.pane.HTML(
        f"<nav aria-label='Pages'><ul class='sb-nav'>{links}</ul></nav>",
        stylesheets=[NAVIGATION_CSS],
        sizing_mode="stretch_width",
    )


SIGNED_IN_CSS = """
.sb-who { color: #fff; white-space: nowrap; padding: 6px 8px; }
.sb-who a { color: #fff; }
"""


def signed_in_as(principal: Principal, sign_out: str | None) -> pn.pane.HTML:
    """Who is signed in, with their role, and the way out (`sign_out`: its path, None for none)."""
    link = f" · <a href='{html.escape(sign_out)}' class='sb-signout'>Sign out</a>" if sign_out else ""
    return pn.pane.HTML(
        f"<div class='sb-who'>Signed in as <b>{html.escape(principal.name)}</b> "
        f"({html.escape(principal.role.value)}){link}</div>",
        stylesheets=[SIGNED_IN_CSS],
        align="center",
    )
