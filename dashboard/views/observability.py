"""Audit log, credential health and auth trace views."""

from __future__ import annotations

import panel as pn
import param

from dashboard.models.observability import AuditLog, AuthTrace, CredentialHealth
from dashboard.models.scopes import ScopesModel
from dashboard.views.components import ChoicePickers, html_pane
from dashboard.views.feedback import attempt
from dashboard.views.scopes import ScopesView
from dashboard.views.tables import data_table


class AuthTraceView(pn.viewable.Viewer):
    """The steps of a connector's last connection attempt; with `selectable`, pick the connector."""

    trace = param.ClassSelector(class_=AuthTrace)
    selectable = param.Boolean(default=True)

    def __init__(self, **params):
        super().__init__(**params)
        self._table = data_table(
            self.trace.frame(),
            pagination="local",
            page_size=20,
            visible=self.trace.param.steps.rx().rx.bool(),
        )
        self.trace.param.watch(lambda _e: setattr(self._table, "value", self.trace.frame()), "steps")
        self._pickers = ChoicePickers(self.trace, any_connector="(choose)", any_agent="(shared credential)")
        for picker in (self._pickers.connector, self._pickers.agent):
            picker.param.watch(self._choose, "value")

    async def _choose(self, _event) -> None:
        self.trace.param.update(connector=self._pickers.chosen_connector, agent=self._pickers.chosen_agent)
        await attempt(self.trace.load())

    @param.depends("trace.connector", "trace.steps")
    def _caption(self):
        if not self.trace.connector:
            return html_pane("<p class='sb-muted'>Choose a connector to see its last connection attempt.</p>")
        if not self.trace.steps:
            return html_pane("<p class='sb-muted'>No connection attempt recorded yet.</p>")
        return pn.Spacer(height=0)

    def __panel__(self):
        chooser = pn.Row(self._pickers.connector, self._pickers.agent, visible=self.selectable)
        return pn.Column(
            "### Auth trace (last connection attempt)",
            chooser,
            self._caption,
            self._table,
            sizing_mode="stretch_width",
        )


class AuditPage(pn.viewable.Viewer):
    log = param.ClassSelector(class_=AuditLog)

    def __init__(self, **params):
        params.setdefault("log", AuditLog())
        super().__init__(**params)
        self._table = data_table(
            self.log.frame(),
            badges=["status"],
            pagination="local",
            page_size=50,
        )
        self.log.param.watch(lambda _e: setattr(self._table, "value", self.log.frame()), "entries")
        self._pickers = ChoicePickers(self.log)
        for picker in (self._pickers.connector, self._pickers.agent):
            picker.param.watch(self._refresh, "value")
        self._reload = pn.widgets.Button(label="Reload", width=100, align="end")
        self._reload.on_click(self._refresh)
        pn.state.onload(self._first_load)

    async def _first_load(self) -> None:
        initial = self.log.connector  # `?connector=NAME` (the overview's "open the audit log")
        await attempt(self.log.load_choices())
        if initial in self.log.connector_names:
            self._pickers.connector.value = initial  # its watcher reloads
        else:
            await self._refresh()

    async def _refresh(self, _event=None) -> None:
        self.log.param.update(connector=self._pickers.chosen_connector, agent=self._pickers.chosen_agent)
        await attempt(self.log.refresh())

    def __panel__(self):
        return pn.Column(
            "## Audit log",
            html_pane(
                "<p class='sb-muted'>Every tool call, newest first; arguments under "
                "secret-looking names are redacted.</p>"
            ),
            pn.Row(self._pickers.connector, self._pickers.agent, self._reload),
            self._table,
            sizing_mode="stretch_width",
        )


class HealthPage(pn.viewable.Viewer):
    health = param.ClassSelector(class_=CredentialHealth)
    trace = param.ClassSelector(class_=AuthTrace)

    def __init__(self, **params):
        params.setdefault("health", CredentialHealth())
        params.setdefault("trace", AuthTrace(service=params["health"].service))
        super().__init__(**params)
        self._table = data_table(
            self.health.frame(),
            badges=["status"],
        )
        self.health.param.watch(lambda _e: setattr(self._table, "value", self.health.frame()), "credentials")
        self._trace_view = AuthTraceView(trace=self.trace)
        self._scopes = ScopesView(model=ScopesModel(service=self.health.service))
        self._reload = pn.widgets.Button(label="Reload", width=100)
        self._reload.on_click(self._refresh)
        pn.state.onload(self._refresh)

    async def _refresh(self, _event=None) -> None:
        await attempt(self.health.refresh())
        await attempt(self._scopes.model.refresh())
        await attempt(self.trace.load_choices())

    def __panel__(self):
        return pn.Column(
            pn.Row("## Credential health", pn.HSpacer(), self._reload),
            self._table,
            self._scopes,
            self._trace_view,
            sizing_mode="stretch_width",
        )
