"""The health page's scopes section: per OAuth credential, granted next to what the server lists and
last asked for, and a step-up button for each credential a challenge found lacking."""

from __future__ import annotations

import panel as pn
import param

from core.models import CredentialScopes
from dashboard.models.scopes import ScopesModel
from dashboard.views.components import BrowserNavigator, html_pane
from dashboard.views.feedback import attempt
from dashboard.views.tables import data_table


class ScopesView(pn.viewable.Viewer):
    model = param.ClassSelector(class_=ScopesModel)

    def __init__(self, **params):
        params.setdefault("model", ScopesModel())
        super().__init__(**params)
        self._navigator = BrowserNavigator()
        self._table = data_table(self.model.frame())
        self._actions = pn.Column(sizing_mode="stretch_width")
        self.model.param.watch(self._render, "scopes")

    def _render(self, _event=None) -> None:
        self._table.value = self.model.frame()
        may = self.model.may("step_up")  # a viewer sees what is missing, not the button
        self._actions.objects = [self._button(s) for s in self.model.needing_step_up()] if may else []

    def _button(self, scopes: CredentialScopes) -> pn.widgets.Button:
        whose = f"{scopes.connector}" + (f" for {scopes.agent}" if scopes.agent else "")
        button = pn.widgets.Button(
            label=f"Step up {whose}: add {' '.join(scopes.missing)}", button_type="primary"
        )

        async def go(_event) -> None:
            button.loading = True
            try:
                url = await attempt(self.model.step_up(scopes))
                if url is not None:
                    self._navigator.go(url)  # the authorization server, then back to /health
            finally:
                button.loading = False

        button.on_click(go)
        return button

    def __panel__(self):
        return pn.Column(
            self._navigator,
            "### Scopes",
            html_pane(
                "<p class='sb-muted'>What each OAuth credential was granted, next to what the server's "
                "metadata lists and what its last <code>insufficient_scope</code> answer asked for. "
                "A step-up authorizes again for the granted scopes plus the missing ones.</p>"
            ),
            self._table,
            self._actions,
            sizing_mode="stretch_width",
        )
