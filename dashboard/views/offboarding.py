"""An offboarding report in the page: what each server did with each credential (revoked, deleted
locally only, failed and why), after an agent is offboarded or a connector removed."""

from __future__ import annotations

import html

import panel as pn
import param

from core.models import OffboardingReport
from dashboard.models.offboarding import report_frame
from dashboard.views.components import heading, html_pane
from dashboard.views.tables import data_table


class OffboardingReportView(pn.viewable.Viewer):
    """Shows `owner.offboarding` (a model's last report) whenever it changes; nothing before."""

    def __init__(self, owner: param.Parameterized, **params):
        super().__init__(**params)
        self._layout = pn.Column(sizing_mode="stretch_width")
        owner.param.watch(lambda event: self._show(event.new), "offboarding")

    def _show(self, report: OffboardingReport | None) -> None:
        if report is None:
            self._layout.objects = []
            return
        failed = report.counts()["failed"]
        tone = "sb-error" if failed else "sb-muted"
        advice = (
            " Revocation failed at a server: the credentials are deleted here, but the tokens may "
            "still be valid there — revoke them in that server's console."
            if failed
            else ""
        )
        summary = html.escape(report.summary() + "." + advice)
        # A new table each time: Tabulator draws no rows in a table that was created hidden.
        self._layout.objects = [
            heading("Revocation report"),
            html_pane(f"<p class='{tone}' role='status'>{summary}</p>"),
            data_table(report_frame(report), badges=["outcome"], widths={"outcome": 170}),
        ]

    def shown(self) -> bool:
        return bool(self._layout.objects)

    def __panel__(self):
        return self._layout
