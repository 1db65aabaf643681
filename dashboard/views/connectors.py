"""The connectors page: index table with per-row actions, Sync all, add/edit form, details."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

import panel as pn
import param

from core.auth_schemes import AUTH_SCHEMES, auth_scheme
from core.models import SyncResult
from dashboard.flash import Arrival
from dashboard.models.base import ConnectAction
from dashboard.models.connectors import ConnectorForm, ConnectorsIndex
from dashboard.models.observability import AuthTrace
from dashboard.views.components import CARD, BrowserNavigator, facts_table, heading, html_pane
from dashboard.views.feedback import attempt, notify_error, notify_success
from dashboard.views.observability import AuthTraceView
from dashboard.views.tables import data_table

# The row actions; Edit and Delete sit with the selected connector's details, labelled with its name.
ACTIONS = {"connect": "Connect", "sync": "Sync"}
CREDENTIAL_MODE_LABELS = {"One shared credential": "shared", "Each agent its own": "per_agent"}


class ConnectorsPage(pn.viewable.Viewer):
    index = param.ClassSelector(class_=ConnectorsIndex)
    form = param.ClassSelector(class_=ConnectorForm)
    trace = param.ClassSelector(class_=AuthTrace)

    def __init__(self, arrival: Arrival | None = None, edit: str | None = None, **params):
        params.setdefault("index", ConnectorsIndex())
        params.setdefault("form", ConnectorForm(service=params["index"].service))
        params.setdefault("trace", AuthTrace(service=params["index"].service))
        super().__init__(**params)
        self._navigator = BrowserNavigator()
        self._table = data_table(
            self.index.frame(),
            badges=["status"],
            buttons={k: f"<span class='sb-action'>{v}</span>" for k, v in ACTIONS.items()},
            titles={k: "" for k in ACTIONS},
            sortable={k: False for k in ACTIONS},
            widths={
                "name": 130,
                "url": 190,
                "auth": 80,
                "mode": 95,
                "status": 125,
                "tools": 75,
                "last sync": 110,
                **{k: 80 for k in ACTIONS},
            },
        )
        self._table.on_click(self._on_cell_click)
        self._confirm = pn.Row(visible=False)
        self._sync_all_button = pn.widgets.Button(label="Sync all", button_type="primary", width=120)
        self._sync_all_button.on_click(self._sync_all)
        # Every sync of a "Sync all", listed when it starts and filled in as each one finishes.
        self._progress = data_table(
            self.index.sync_progress(),
            badges=["state"],
            visible=False,
            widths={
                "connector": 200,
                "agent": 140,
                "state": 100,
                "tools": 75,
                "changed": 100,
                "time (ms)": 90,
            },
        )
        self.index.param.watch(self._show_sync_progress, ["sync_plan", "sync_results"])
        self._form_view = ConnectorFormView(form=self.form, on_saved=self._saved)
        self.index.param.watch(self._show_connectors, "connectors")
        if arrival is not None:
            arrival.param.watch(self._arrived, "flash")
        self._edit_first = edit  # `?edit=NAME` (the overview's "enter a new key"): open its form
        pn.state.onload(self._load)

    async def _arrived(self, event: param.parameterized.Event) -> None:
        """Back from an OAuth redirect: show the connector it was about."""
        if event.new is not None and event.new.connector:
            self.index.selected = event.new.connector
            await self._load_trace()

    async def _load(self) -> None:
        await attempt(self.index.refresh())
        if self._edit_first and any(c.name == self._edit_first for c in self.index.connectors):
            self.index.selected = self._edit_first
            self.form.load(self.index.get(self._edit_first))
        await self._load_trace()

    def _show_connectors(self, _event=None) -> None:
        self._table.value = self.index.frame()

    async def _on_cell_click(self, event) -> None:
        name = self._table.value.iloc[event.row]["name"]
        self.index.selected = name
        handler: Callable[[str], Awaitable[None]] | None = {
            "connect": self._connect,
            "sync": self._sync,
        }.get(event.column)
        if handler is not None:
            await handler(name)
        await self._load_trace()

    async def _connect(self, name: str) -> None:
        await follow_connect(self._navigator, self.index.connect(name))

    async def _sync(self, name: str) -> None:
        report_syncs(
            await attempt(self.index.sync(name)),
            nothing=f"Nothing to sync: no agent has connected {name} yet.",
        )

    def _ask_delete(self, name: str) -> None:
        confirm = pn.widgets.Button(label=f"Yes, delete {name}", button_type="danger")
        cancel = pn.widgets.Button(label="Cancel")

        async def delete(_event) -> None:
            self._confirm.visible = False
            await attempt(self.index.remove(name), success=f"Deleted {name}.")

        confirm.on_click(delete)
        cancel.on_click(lambda _event: setattr(self._confirm, "visible", False))
        question = html_pane(f"<b>Delete the connector {html.escape(name)}, its credentials and tools?</b>")
        self._confirm.objects = [question, confirm, cancel]
        self._confirm.visible = True

    async def _sync_all(self, _event) -> None:
        self._sync_all_button.disabled = True
        try:
            results = await attempt(self.index.sync_all())
        finally:
            self._sync_all_button.disabled = False
        report_syncs(results, nothing="Nothing to sync yet.")

    async def _saved(self) -> None:
        await attempt(self.index.refresh())
        self.index.selected = self.form.stored.name if self.form.stored else self.index.selected

    async def _load_trace(self) -> None:
        selected = self.index.selected
        connector = next((c for c in self.index.connectors if c.name == selected), None)
        if connector is None or connector.credential_mode != "shared":
            self.trace.param.update(connector=None, steps=[])  # per-agent attempts: see the Health page
            return
        self.trace.connector = selected
        await attempt(self.trace.load())

    @param.depends("index.syncing", "index.sync_total", "index.sync_results")
    def _sync_count(self):
        results = self.index.sync_results
        if not (self.index.syncing or results):
            return pn.Spacer(height=0)
        total = max(self.index.sync_total, len(results), 1)
        bar = pn.indicators.Progress(value=len(results), max=total, width=300, bar_color="primary")
        failed = sum(not r.ok for r in results)
        label = f"Syncs: {len(results)} of {total} done" + (f", {failed} failed" if failed else "")
        return pn.Row(bar, html_pane(html.escape(label + ("…" if self.index.syncing else "."))))

    def _show_sync_progress(self, _event=None) -> None:
        self._progress.value = self.index.sync_progress()
        self._progress.visible = bool(self.index.sync_plan)

    @param.depends("index.selected", "index.connectors")
    def _details(self):
        details = self.index.details()
        if details is None:
            return pn.Column(
                heading("Details"),
                facts_table(None, empty="Click a connector to see what discovery found for it."),
            )
        name = details["name"]
        edit = pn.widgets.Button(label=f"Edit {name}")
        edit.on_click(lambda _event: self.form.load(self.index.get(name)))
        delete = pn.widgets.Button(label=f"Delete {name}", button_type="danger")
        delete.on_click(lambda _event: self._ask_delete(name))
        return pn.Column(heading(f"Details — {name}"), pn.Row(edit, delete), facts_table(details))

    def __panel__(self):
        return pn.Column(
            self._navigator,
            pn.Row(heading("Connectors", 2), pn.HSpacer(), self._sync_all_button),
            self._sync_count,
            self._progress,
            self._table,
            pn.Row(
                self._form_view,
                pn.Column(
                    self._details,
                    self._confirm,
                    AuthTraceView(trace=self.trace, selectable=False),
                    sizing_mode="stretch_width",
                ),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )


class ConnectorFormView(pn.viewable.Viewer):
    """Add or edit a connector. Secret inputs are masked and emptied by the model after each submit."""

    form = param.ClassSelector(class_=ConnectorForm)

    def __init__(self, on_saved: Callable[[], Awaitable[None]] | None = None, **params):
        super().__init__(**params)
        self._on_saved = on_saved
        f = self.form
        scheme = f.param.auth_type.rx().rx.pipe(auth_scheme)
        header, oauth_fields = scheme.header_name, scheme.authorization_server
        self._widgets = {
            "connector_name": pn.widgets.TextInput.from_param(
                f.param.connector_name, placeholder="linear", disabled=f.param.editing.rx().rx.is_not(None)
            ),
            "url": pn.widgets.TextInput.from_param(f.param.url, placeholder="https://mcp.example.com/mcp"),
            "auth_type": pn.widgets.Select.from_param(
                f.param.auth_type, options={s.label: name for name, s in AUTH_SCHEMES.items()}
            ),
            "credential_mode": pn.Column(
                html_pane("Credentials", margin=(5, 10, 0, 10)),
                pn.widgets.RadioBoxGroup.from_param(
                    f.param.credential_mode, options=CREDENTIAL_MODE_LABELS, inline=True
                ),
                margin=0,
            ),
            "header_name": pn.widgets.TextInput.from_param(
                f.param.header_name, placeholder="X-API-Key", visible=header
            ),
            "client_id": pn.widgets.TextInput.from_param(f.param.client_id, visible=oauth_fields),
            "client_secret": pn.widgets.PasswordInput.from_param(
                f.param.client_secret,
                visible=oauth_fields,
                placeholder="write-only; empty keeps the stored one",
            ),
            "scopes": pn.widgets.TextInput.from_param(f.param.scopes, visible=oauth_fields),
            "shared_secret": pn.widgets.PasswordInput.from_param(
                f.param.shared_secret,
                placeholder="write-only; validated against the server",
                visible=pn.bind(lambda *_: f.takes_shared_secret, f.param.auth_type, f.param.credential_mode),
            ),
        }
        self._save = pn.widgets.Button(label="Save", button_type="primary", width=100)
        self._save.on_click(self._submit)
        self._new = pn.widgets.Button(label="New connector", width=140)
        self._new.on_click(lambda _event: self.form.reset())

    async def _submit(self, _event) -> None:
        self._save.disabled = True
        try:
            saved = await attempt(self.form.submit(), success=_saved_message)
        finally:
            self._save.disabled = False
        if saved is not None and self._on_saved is not None:
            await self._on_saved()

    def _error(self, field: str):
        return html_pane(
            pn.bind(
                lambda errors: (
                    f"<span class='sb-error'>{html.escape(errors.get(field, ''))}</span>"
                    if field in errors
                    else ""
                ),
                self.form.param.errors,
            ),
            margin=(0, 10),
        )

    @param.depends("form.editing")
    def _title(self):
        return heading(f"Edit {self.form.editing}" if self.form.editing else "Add a connector")

    @param.depends("form.stored")
    def _discovery(self):
        stored = self.form.stored
        if stored is None or not auth_scheme(stored.auth_type).authorization_server or not stored.issuer:
            return pn.Spacer(height=0)
        return facts_table(
            {
                "authorization server": stored.issuer,
                "registration": stored.registration_method or "—",
                "scopes": " ".join(stored.scopes) or "—",
            }
        )

    def __panel__(self):
        fields = [pn.Column(widget, self._error(name), margin=0) for name, widget in self._widgets.items()]
        return pn.Column(
            self._title, *fields, pn.Row(self._save, self._new), self._discovery, width=420, styles=CARD
        )


def _saved_message(connector) -> str:
    if connector.credential_mode == "per_agent":
        return f"Saved {connector.name}. Each agent connects it from its own page (Agents)."
    hint = " Next: Connect." if connector.status != "connected" else ""
    return f"Saved {connector.name}.{hint}"


async def follow_connect(navigator: BrowserNavigator, work: Awaitable[ConnectAction]) -> None:
    """Run a Connect click: send the browser to the authorization server, or report the outcome."""
    action = await attempt(work)
    if action is None:
        return
    if action.authorization_url:
        navigator.go(action.authorization_url)
    elif action.outcome is not None:
        notify_success(action.outcome.summary())


def report_syncs(results: list[SyncResult] | None, nothing: str = "Nothing to sync.") -> None:
    """Notify how syncs went (a failed sync is a result, not an exception); None: already reported."""
    if results is None:
        return
    failed = [r.connector + (f" as {r.agent}" if r.agent else "") for r in results if not r.ok]
    if not results:
        notify_success(nothing)
    elif failed:
        notify_error(
            f"{len(failed)} of {len(results)} syncs failed: {', '.join(failed)}."
            if len(results) > 1
            else f"{failed[0]}: sync failed — {results[0].error}"
        )
    elif len(results) > 1:
        notify_success(f"All {len(results)} syncs succeeded.")
    else:
        notify_success(
            f"Synced {results[0].connector}: {results[0].tools} tools, {results[0].changed} changed."
        )
