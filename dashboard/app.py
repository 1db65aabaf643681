"""The dashboard's pages: one template with navigation around each page's view.

`panel serve` runs one thin script per route (dashboard/pages/*.py); each calls `page(slug)`.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn

from dashboard import flash, runtime
from dashboard.models.agents import AgentCredentials
from dashboard.views.agents import AgentPage, AgentsPage
from dashboard.views.components import alert
from dashboard.views.connectors import ConnectorsPage
from dashboard.views.feedback import handle_unexpected, notify_error, notify_success
from dashboard.views.observability import AuditPage, HealthPage
from dashboard.views.playground import PlaygroundPage
from dashboard.views.tools import ToolsPage

TITLE = "Switchboard"
NAVIGATION = {
    "connectors": "Connectors",
    "agents": "Agents",
    "tools": "Tools",
    "playground": "Playground",
    "audit": "Audit log",
    "health": "Credential health",
}
PageFactory = Callable[[dict[str, str], flash.Arrival], pn.viewable.Viewer]

NAVIGATION_CSS = (
    ".sb-nav { list-style: none; padding: 0; } .sb-nav li { margin: 6px 0; } .sb-active { font-weight: 700; }"
)


def _args() -> dict[str, str]:
    """The page's query parameters (first value of each)."""
    return {
        key: values[0].decode("utf-8", "replace")
        for key, values in (pn.state.session_args or {}).items()
        if values
    }


PAGES: dict[str, PageFactory] = {
    "connectors": lambda args, arrival: ConnectorsPage(arrival=arrival),
    "agents": lambda args, arrival: AgentsPage(),
    "agent": lambda args, arrival: AgentPage(credentials=AgentCredentials(agent=args.get("name", ""))),
    "tools": lambda args, arrival: ToolsPage(),
    "playground": lambda args, arrival: PlaygroundPage(initial=args),
    "audit": lambda args, arrival: AuditPage(),
    "health": lambda args, arrival: HealthPage(),
}


def page(slug: str) -> pn.template.BaseTemplate:
    """The template for one route, with the flash message of an OAuth redirect when there is one
    (read from the store once the page has loaded: possibly put there by another replica)."""
    pn.extension("tabulator", notifications=True)
    pn.config.exception_handler = handle_unexpected
    args = _args()
    arrival = flash.Arrival()
    main = [pn.panel(pn.bind(_banner, arrival.param.flash)), PAGES[slug](args, arrival)]
    key = args.get(flash.FLASH_PARAM)
    if key:

        async def arrive() -> None:
            await arrival.load(runtime.service().store, key)
            if arrival.flash is not None:
                (notify_success if arrival.flash.ok else notify_error)(arrival.flash.message)

        pn.state.onload(arrive)
    active = "agents" if slug == "agent" else slug
    return pn.template.BootstrapTemplate(
        title=TITLE, sidebar=[_navigation(active)], main=main, sidebar_width=220
    )


def _banner(arrival: flash.Flash | None) -> pn.viewable.Viewable:
    return alert(arrival.message, arrival.ok) if arrival is not None else pn.Column()


def _navigation(active: str) -> pn.pane.HTML:
    links = "".join(
        f"<li><a href='{slug}' class='{'sb-active' if slug == active else ''}'>{label}</a></li>"
        for slug, label in NAVIGATION.items()
    )
    return pn.pane.HTML(f"<nav><ul class='sb-nav'>{links}</ul></nav>", stylesheets=[NAVIGATION_CSS])
