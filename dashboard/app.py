"""The dashboard's pages: one template with navigation around each page's view.

`panel serve` runs one thin script per route (dashboard/pages/*.py); each calls `page(slug)`, which
builds nothing of the app for a session without a signed-in operator (`dashboard/signin.py`) and
otherwise binds the session to that operator's services before any view asks for them. The header
says who is signed in, with their role and a sign-out link.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import panel as pn

from core.roles import Principal
from dashboard import flash, runtime, signin
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
PageFactory = Callable[[dict[str, str], flash.Flash | None], pn.viewable.Viewer]

WHO_CSS = ".sb-who { color: white; text-align: right; padding-right: 16px; } .sb-who a { color: white; }"
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
    """The template for one route, with the flash message of an OAuth redirect when there is one."""
    pn.extension("tabulator", notifications=True)
    pn.config.exception_handler = handle_unexpected
    principal = signin.session_principal()
    if principal is None:
        return _signed_out()
    runtime.act_for_session(principal)
    args = _args()
    arrival = flash.take(args.get(flash.FLASH_PARAM))
    main: list = []
    if arrival is not None:
        main.append(alert(arrival.message, arrival.ok))
        pn.state.onload(lambda: (notify_success if arrival.ok else notify_error)(arrival.message))
    main.append(PAGES[slug](args, arrival))
    active = "agents" if slug == "agent" else slug
    return pn.template.BootstrapTemplate(
        title=TITLE,
        sidebar=[_navigation(active)],
        header=[_who(principal)],
        main=main,
        sidebar_width=220,
    )


def _who(principal: Principal) -> pn.pane.HTML:
    """Who is signed in, and the way out (none: the local admin needs no sign-out)."""
    sign_out = (
        f" · <a href='{signin.LOGOUT_PATH}' class='sb-signout'>Sign out</a>"
        if signin.front_door().mode != "none"
        else ""
    )
    return pn.pane.HTML(
        f"<div class='sb-who'>Signed in as <b>{html.escape(principal.name)}</b> "
        f"({html.escape(principal.role.value)}){sign_out}</div>",
        stylesheets=[WHO_CSS],
        sizing_mode="stretch_width",
    )


def _signed_out() -> pn.template.BaseTemplate:
    """What a session without a signed-in operator gets: the way to sign in, nothing of the app."""
    return pn.template.BootstrapTemplate(
        title=TITLE,
        main=[
            pn.pane.HTML(
                f"<p>Sign in to use Switchboard: <a href='{signin.LOGIN_PATH}'>sign in</a>.</p>"
                "<p>(A dashboard started without Switchboard's signed sessions shows nothing: "
                "start it with <code>switchboard serve</code>.)</p>"
            )
        ],
    )


def _navigation(active: str) -> pn.pane.HTML:
    links = "".join(
        f"<li><a href='{slug}' class='{'sb-active' if slug == active else ''}'>{label}</a></li>"
        for slug, label in NAVIGATION.items()
    )
    return pn.pane.HTML(f"<nav><ul class='sb-nav'>{links}</ul></nav>", stylesheets=[NAVIGATION_CSS])
