"""The dashboard's pages: one template with navigation around each page's view.

`panel serve` runs one thin script per route (dashboard/pages/*.py); each calls `page(slug)`, which
builds nothing of the app for a session without a signed-in operator (`dashboard/signin.py`) and
otherwise binds the session to that operator's services before any view asks for them. The header
says who is signed in, with their role and a sign-out link.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import urlencode

import panel as pn

from dashboard import flash, runtime, signin
from dashboard.models.agents import AgentCredentials
from dashboard.models.observability import AuditLog
from dashboard.models.overview import MIN_REFRESH_SECONDS, OverviewModel
from dashboard.session_watch import watch_session
from dashboard.views.agents import AgentPage, AgentsPage
from dashboard.views.components import BrowserNavigator, alert
from dashboard.views.connectors import ConnectorsPage
from dashboard.views.feedback import handle_unexpected, notify_error, notify_success, readable_notifications
from dashboard.views.observability import AuditPage, HealthPage
from dashboard.views.overview import OverviewPage
from dashboard.views.playground import PlaygroundPage
from dashboard.views.review import ReviewPage
from dashboard.views.template import DashboardTemplate, navigation, signed_in_as
from dashboard.views.tools import ToolsPage

TITLE = "Switchboard"
NAVIGATION = {
    "./": "Overview",
    "connectors": "Connectors",
    "agents": "Agents",
    "tools": "Tools",
    "review": "Tool review",
    "playground": "Playground",
    "audit": "Audit log",
    "health": "Credential health",
}
PageFactory = Callable[[dict[str, str], flash.Arrival], pn.viewable.Viewer]


def _args() -> dict[str, str]:
    """The page's query parameters (first value of each)."""
    return {
        key: values[0].decode("utf-8", "replace")
        for key, values in (pn.state.session_args or {}).items()
        if values
    }


PAGES: dict[str, PageFactory] = {
    "overview": lambda args, arrival: OverviewPage(model=OverviewModel(**_refresh(args))),
    "connectors": lambda args, arrival: ConnectorsPage(arrival=arrival, edit=args.get("edit")),
    "agents": lambda args, arrival: AgentsPage(),
    "agent": lambda args, arrival: AgentPage(credentials=AgentCredentials(agent=args.get("name", ""))),
    "tools": lambda args, arrival: ToolsPage(),
    "review": lambda args, arrival: ReviewPage(connector=args.get("connector"), agent=args.get("agent")),
    "playground": lambda args, arrival: PlaygroundPage(initial=args),
    "audit": lambda args, arrival: AuditPage(log=AuditLog(connector=args.get("connector") or None)),
    "health": lambda args, arrival: HealthPage(),
}


def _refresh(args: dict[str, str]) -> dict[str, float]:
    """`?refresh=SECONDS`: how often the overview re-reads (bounded; ignored when not a number)."""
    try:
        seconds = float(args["refresh"])
    except (KeyError, ValueError):
        return {}
    if not math.isfinite(seconds):
        return {}
    return {"refresh_seconds": min(max(seconds, MIN_REFRESH_SECONDS), 3600)}


def page(slug: str) -> pn.template.BaseTemplate:
    """The template for one route, with the flash message of an OAuth redirect when there is one
    (read from the store once the page has loaded: possibly put there by another replica)."""
    pn.extension("tabulator", notifications=True)
    # The pages' Markdown is headings and labels, never TeX: the template leaves MathJax out.
    pn.pane.Markdown.param.disable_math.default = True
    pn.config.exception_handler = handle_unexpected
    principal = signin.session_principal()
    if principal is None:
        return _signed_out()
    runtime.act_for_session(principal)
    leave, document, location = BrowserNavigator(), pn.state.curdoc, pn.state.location

    def session_ended() -> None:
        runtime.end_session(document)
        here = (location.pathname or "/") + (location.search or "") if location else "/"
        leave.go(signin.LOGIN_PATH + "?" + urlencode({"next": here}))

    watch_session(session_ended)
    readable_notifications()
    args = _args()
    arrival = flash.Arrival()
    main = [leave, pn.panel(pn.bind(_banner, arrival.param.flash)), PAGES[slug](args, arrival)]
    key = args.get(flash.FLASH_PARAM)
    if key:

        async def arrive() -> None:
            await arrival.load(runtime.service().store, key)
            if arrival.flash is not None:
                (notify_success if arrival.flash.ok else notify_error)(arrival.flash.message)

        pn.state.onload(arrive)
    active = {"agent": "agents", "overview": "./"}.get(slug, slug)
    # `none` signs in the local admin without a sign-in, so there is nothing to sign out of.
    sign_out = signin.LOGOUT_PATH if signin.front_door().mode != "none" else None
    return DashboardTemplate(
        title=TITLE,
        header=[navigation(NAVIGATION, active), signed_in_as(principal, sign_out)],
        main=main,
    )


def _signed_out() -> pn.template.BaseTemplate:
    """What a session without a signed-in operator gets: the way to sign in, nothing of the app."""
    return DashboardTemplate(
        title=TITLE,
        main=[
            pn.pane.HTML(
                f"<p>Sign in to use Switchboard: <a href='{signin.LOGIN_PATH}'>sign in</a>.</p>"
                "<p>(A dashboard started without Switchboard's signed sessions shows nothing: "
                "start it with <code>switchboard serve</code>.)</p>"
            )
        ],
    )


def _banner(arrival: flash.Flash | None) -> pn.viewable.Viewable:
    return alert(arrival.message, arrival.ok) if arrival is not None else pn.Column()
