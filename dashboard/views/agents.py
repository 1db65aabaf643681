"""Agents: the directory page and one agent's credentials page."""

from __future__ import annotations

import html
from urllib.parse import quote

import pandas as pd
import panel as pn
import param

from dashboard.models.access import AgentGateway
from dashboard.models.agents import CONNECTED, NEEDS_REAUTH, AgentCredentials, AgentDirectory, CredentialRow
from dashboard.models.formatting import format_expiry, format_scopes
from dashboard.views.access import AgentGatewayView
from dashboard.views.components import CARD, BrowserNavigator, facts_table, html_pane, status_badge
from dashboard.views.connectors import follow_connect, report_syncs
from dashboard.views.feedback import attempt
from dashboard.views.offboarding import OffboardingReportView
from dashboard.views.tables import data_table


class AgentsPage(pn.viewable.Viewer):
    directory = param.ClassSelector(class_=AgentDirectory)

    def __init__(self, **params):
        params.setdefault("directory", AgentDirectory())
        super().__init__(**params)
        self._table = data_table(self._frame(), formatters={"open": {"type": "html"}}, titles={"open": ""})
        self.directory.param.watch(lambda _e: setattr(self._table, "value", self._frame()), "agents")
        self._name = pn.widgets.TextInput(label="Agent name", placeholder="support-bot", width=220)
        self._description = pn.widgets.TextInput(label="Description", placeholder="optional", width=320)
        self._create = pn.widgets.Button(label="Create agent", button_type="primary", width=140, align="end")
        self._create.on_click(self._create_agent)
        pn.state.onload(self._refresh)

    def _frame(self) -> pd.DataFrame:
        frame = self.directory.frame()
        # Names are escaped and URL-quoted before they become markup.
        frame["open"] = [
            f"<a href='agent?name={quote(n, safe='')}'>Open {html.escape(n)}</a>" for n in frame["name"]
        ]
        return frame

    async def _refresh(self, _event=None) -> None:
        await attempt(self.directory.refresh())

    async def _create_agent(self, _event) -> None:
        agent = await attempt(
            self.directory.create(self._name.value, self._description.value),
            success=lambda a: f"Created agent {a.name}.",
        )
        if agent is not None:
            self._name.value = self._description.value = ""

    def __panel__(self):
        return pn.Column(
            "## Agents",
            html_pane(
                "<p class='sb-muted'>An agent uses the shared connectors' credentials and, for "
                "per-agent connectors, an account of its own. Open an agent to connect those.</p>"
            ),
            self._table,
            pn.Row(self._name, self._description, self._create, visible=self.directory.may("add_agent")),
            sizing_mode="stretch_width",
        )


class AgentPage(pn.viewable.Viewer):
    """One agent: each per-agent connector as not connected / connected / needs re-auth, then its
    gateway tokens and policy."""

    credentials = param.ClassSelector(class_=AgentCredentials)
    gateway = param.ClassSelector(class_=AgentGateway)

    def __init__(self, **params):
        params.setdefault(
            "gateway", AgentGateway(agent=params["credentials"].agent, service=params["credentials"].service)
        )
        super().__init__(**params)
        self._navigator = BrowserNavigator()
        self._cards = pn.Column(sizing_mode="stretch_width")
        self._shared = data_table(_shared_frame([]), badges=["status"])
        agent = self.credentials.agent
        self._offboard = pn.widgets.Button(
            label=f"Offboard {agent}", button_type="danger", visible=self.credentials.may("offboard_agent")
        )
        self._offboard.on_click(lambda _event: setattr(self._confirm, "visible", True))
        confirm = pn.widgets.Button(label=f"Yes, revoke everything of {agent}", button_type="danger")
        confirm.on_click(self._run_offboarding)
        cancel = pn.widgets.Button(label="Cancel")
        cancel.on_click(lambda _event: setattr(self._confirm, "visible", False))
        self._confirm = pn.Row(confirm, cancel, visible=False)
        self.credentials.param.watch(self._render, ["per_agent", "shared"])
        pn.state.onload(self._refresh)

    async def _refresh(self) -> None:
        """Top to bottom: the gateway section fills in only once the cards and table above it have,
        so what is drawn never moves because something above it arrived later. (Holding the
        document across both reads is not allowed: Bokeh releases a hold only under the document's
        lock, which an await gives up.)"""
        if await attempt(self.credentials.refresh()) is None:  # e.g. no such agent: say so in the page too
            self._cards.objects = [
                html_pane("<p class='sb-error'>This agent's connectors could not be loaded.</p>")
            ]
        await attempt(self.gateway.refresh())

    def _render(self, *_events) -> None:
        rows = self.credentials.per_agent
        self._cards.objects = [self._card(r) for r in rows] or [
            html_pane("<p class='sb-muted'>No per-agent connectors yet.</p>")
        ]
        self._shared.value = _shared_frame(self.credentials.shared)

    def _card(self, row: CredentialRow) -> pn.viewable.Viewable:
        header = html_pane(f"<b>{html.escape(row.connector)}</b> {status_badge(row.state)}")
        body: list = [header]
        if row.state == CONNECTED:
            body.append(facts_table(row.facts()))
            body.append(
                pn.Row(
                    self._button("Sync", self._sync, row, "sync"),
                    self._button("Disconnect", self._disconnect, row, "disconnect"),
                )
            )
        else:
            if row.state == NEEDS_REAUTH and row.credential.reason:
                body.append(html_pane(f"<p class='sb-error'>{html.escape(row.credential.reason)}</p>"))
            body.append(
                self._key_entry(row)
                if row.takes_key
                else pn.Row(
                    self._button(
                        "Reconnect" if row.state == NEEDS_REAUTH else "Connect",
                        self._connect,
                        row,
                        "connect",
                        button_type="primary",
                    )
                )
            )
            if row.state == NEEDS_REAUTH:
                body.append(self._button("Disconnect", self._disconnect, row, "disconnect"))
        return pn.Column(*body, styles=CARD, sizing_mode="stretch_width")

    def _key_entry(self, row: CredentialRow) -> pn.Row:
        label = row.scheme.secret_label
        secret = pn.widgets.PasswordInput(
            label=f"{label} for {self.credentials.agent}",
            width=320,
            placeholder="write-only; validated against the server",
        )

        async def save(_event) -> None:
            typed, secret.value = secret.value, ""  # never keep it in the page
            button.loading = True
            try:
                await attempt(
                    self.credentials.set_key(row.connector, typed), success=f"Stored the {label.lower()}."
                )
            finally:
                self._render()

        button = pn.widgets.Button(label=f"Save key for {row.connector}", button_type="primary", align="end")
        button.on_click(save)
        return pn.Row(secret, button, visible=self.credentials.may("set_secret"))

    def _button(
        self, verb: str, action, row: CredentialRow, needs: str, button_type: str = "default"
    ) -> pn.widgets.Button:
        """A button running `action`, shown only to a role that may run the services action `needs`."""
        # "Connect linear", not just "Connect": the page has one card per connector.
        button = pn.widgets.Button(
            label=f"{verb} {row.connector}", button_type=button_type, visible=self.credentials.may(needs)
        )

        async def run(_event) -> None:
            button.loading = True
            try:
                await action(row.connector)
            finally:
                self._render()  # fresh cards: the clicked button, maybe detached by now, is not touched again

        button.on_click(run)
        return button

    async def _connect(self, connector: str) -> None:
        await follow_connect(self._navigator, self.credentials.connect(connector))

    async def _sync(self, connector: str) -> None:
        result = await attempt(self.credentials.sync(connector))
        report_syncs(None if result is None else [result])

    async def _run_offboarding(self, _event) -> None:
        self._confirm.visible = False
        self._offboard.loading = True
        try:
            await attempt(self.credentials.offboard(), success=lambda report: report.summary())
            await attempt(self.gateway.refresh())  # its tokens now show as revoked
        finally:
            self._offboard.loading = False

    async def _disconnect(self, connector: str) -> None:
        await attempt(self.credentials.disconnect(connector), success=f"Disconnected {connector}.")

    def __panel__(self):
        agent = html.escape(self.credentials.agent)
        return pn.Column(
            self._navigator,
            html_pane(f"<h2>Agent {agent}</h2><p><a href='agents'>← all agents</a></p>"),
            "### Its own accounts (per-agent connectors)",
            self._cards,
            "### Shared connectors it uses",
            self._shared,
            AgentGatewayView(gateway=self.gateway),
            "### Offboarding",
            html_pane(
                "<p class='sb-muted'>Revokes this agent's own tokens at every authorization server "
                "that offers revocation, deletes its credentials here and revokes its gateway tokens. "
                "The agent stays; connect it again to give it access back.</p>"
            ),
            self._offboard,
            self._confirm,
            OffboardingReportView(self.credentials),
            sizing_mode="stretch_width",
        )


def _shared_frame(rows: list[CredentialRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "connector": r.connector,
                "auth": r.auth_type,
                "status": r.state,
                "scopes": format_scopes(r.credential.scopes),
                "expires": format_expiry(r.credential.expires_at),
            }
            for r in rows
        ],
        columns=["connector", "auth", "status", "scopes", "expires"],
    )
