"""The overview page at `/`: headline counts, what needs attention with one-click fixes, three charts.

It refreshes itself (a periodic callback re-reads `Switchboard.overview()`); a chart is rebuilt only
when its data changed, so an idle page sends nothing to the browser.
"""

from __future__ import annotations

import html
from datetime import datetime

import pandas as pd
import panel as pn
import param

from core.models import AttentionItem
from dashboard.models.overview import OverviewModel
from dashboard.views.charts import (
    activity_chart,
    activity_summary,
    expiry_chart,
    expiry_summary,
    tools_chart,
    tools_summary,
)
from dashboard.views.components import CARD, BrowserNavigator, html_pane, status_badge
from dashboard.views.connectors import follow_connect, report_syncs
from dashboard.views.feedback import attempt

MAX_ITEMS = 50  # attention items shown; the rest are counted
CLOCK_STEP_SECONDS = 300

TILES_CSS = """
.sb-tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(250px, 1fr)); gap: 12px; }
.sb-group { border: 1px solid #dee2e6; border-radius: 6px; padding: 8px 12px; }
.sb-group h3 { font-size: 1rem; margin: 0 0 6px 0; }
.sb-group ul { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 6px; }
.sb-tile { display: block; min-width: 96px; padding: 6px 10px; border-radius: 6px; border-left: 6px solid;
  color: #212529; text-decoration: none; }
.sb-tile:hover, .sb-tile:focus { text-decoration: underline; }
.sb-tile b { display: block; font-size: 1.6rem; line-height: 1.1; }
.sb-tile-ok { background: #e8f4ee; border-color: #198754; } .sb-tile-warn { background: #fff8e1; border-color: #b58105; }
.sb-tile-bad { background: #fbe9eb; border-color: #b02a37; } .sb-tile-idle { background: #f1f3f5; border-color: #6c757d; }
.sb-fix { display: inline-block; border: 1px solid #0a58ca; border-radius: 4px; padding: 2px 10px;
  color: #0a58ca; text-decoration: none; }
"""


class OverviewPage(pn.viewable.Viewer):
    model = param.ClassSelector(class_=OverviewModel)

    def __init__(self, **params):
        params.setdefault("model", OverviewModel())
        super().__init__(**params)
        self._navigator = BrowserNavigator()
        self._tiles = html_pane("", stylesheets=[TILES_CSS], sizing_mode="stretch_width")
        self._updated = html_pane("")
        self._attention = pn.Column(sizing_mode="stretch_width")
        self._charts = {
            name: pn.Column(sizing_mode="stretch_width") for name in ("activity", "expiry", "tools")
        }
        self._frames: dict[str, tuple[pd.DataFrame, float | None]] = {}
        self._shown_attention: tuple[AttentionItem, ...] | None = None
        self.model.param.watch(self._render, "overview")
        pn.state.onload(self._start)

    async def _start(self) -> None:
        await self._refresh()
        pn.state.add_periodic_callback(self._refresh, period=int(self.model.refresh_seconds * 1000))

    async def _refresh(self) -> None:
        await attempt(self.model.refresh())

    def _render(self, *_events) -> None:
        overview = self.model.overview
        if overview is None:
            return
        self._tiles.object = _tiles_markup(self.model.tiles())
        self._updated.object = (
            f"<p class='sb-muted'>Updated {datetime.fromtimestamp(overview.generated_at):%H:%M:%S}; "
            f"refreshes every {self.model.refresh_seconds:g} s.</p>"
        )
        if overview.attention != self._shown_attention:  # unchanged: keep the buttons as they are
            self._shown_attention = overview.attention
            self._render_attention(list(overview.attention))
        now = datetime.fromtimestamp(overview.generated_at)
        # The time axes move with the clock: redrawn every few minutes even when the data stays.
        moment = overview.generated_at // CLOCK_STEP_SECONDS
        activity, expiry = (lambda f: activity_chart(f, now)), (lambda f: expiry_chart(f, now))
        self._chart("activity", (self.model.activity_frame(), moment), activity, activity_summary)
        self._chart("expiry", (self.model.expiry_frame(), moment), expiry, lambda f: expiry_summary(f, now))
        self._chart("tools", (self.model.tools_frame(), None), tools_chart, tools_summary)

    def _chart(self, name: str, data: tuple[pd.DataFrame, float | None], build, summarize) -> None:
        frame, moment = data
        shown = self._frames.get(name)
        if shown is not None and shown[1] == moment and shown[0].equals(frame):
            return  # unchanged: nothing to send
        self._frames[name] = data
        caption = html_pane(f"<p>{html.escape(summarize(frame))}</p>")
        # A new pane each time: Panel 1.10 fails to toggle a Bokeh pane's `visible` once shown.
        chart = [] if frame.empty else [pn.pane.Bokeh(build(frame), sizing_mode="stretch_width")]
        self._charts[name].objects = [*chart, caption]

    def _render_attention(self, items: list[AttentionItem]) -> None:
        if not items:
            self._attention.objects = [
                html_pane("<p>Nothing needs attention: every connector and credential is fine.</p>")
            ]
            return
        rows = [self._item(item) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            rows.append(html_pane(f"<p class='sb-muted'>…and {len(items) - MAX_ITEMS} more.</p>"))
        self._attention.objects = rows

    def _item(self, item: AttentionItem) -> pn.viewable.Viewable:
        who = f" ({html.escape(item.agent)})" if item.agent else ""
        text = html_pane(
            f"{status_badge(item.severity)} <b>{html.escape(item.connector)}</b>{who}: {html.escape(item.problem)}",
            sizing_mode="stretch_width",
        )
        fix = self.model.fix(item)
        if fix.needs is not None and not self.model.may(fix.needs):
            return pn.Row(text, styles={"border-bottom": "1px solid #dee2e6"}, sizing_mode="stretch_width")
        if fix.link is not None:
            action = html_pane(
                f"<a class='sb-fix' href='{html.escape(fix.link)}'>{html.escape(fix.label)}</a>",
                stylesheets=[TILES_CSS],
            )
        else:
            action = pn.widgets.Button(label=fix.label, button_type="primary")
            action.on_click(lambda _event, item=item, button=action: self._run(item, button))
        return pn.Row(
            text, action, styles={"border-bottom": "1px solid #dee2e6"}, sizing_mode="stretch_width"
        )

    async def _run(self, item: AttentionItem, button: pn.widgets.Button) -> None:
        button.loading = True
        try:
            if item.fix == "connect":
                await follow_connect(self._navigator, self.model.connect(item))
            else:
                report_syncs(
                    await attempt(self.model.sync(item)), nothing=f"Nothing to sync for {item.connector}."
                )
        finally:
            button.loading = False

    def __panel__(self):
        activity, expiry, tools = (self._charts[n] for n in ("activity", "expiry", "tools"))
        return pn.Column(
            self._navigator,
            "## Overview",
            self._updated,
            self._tiles,
            "### Needs attention",
            self._attention,
            "### Activity",
            pn.Column(
                activity,
                pn.Row(expiry, tools, sizing_mode="stretch_width"),
                styles=CARD,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )


def _tiles_markup(groups: dict) -> str:
    """The headline numbers as links, grouped; every number is labelled in words beside its colour."""
    sections = []
    for title, tiles in groups.items():
        items = "".join(
            f"<li><a class='sb-tile sb-tile-{t.tone}' data-count='{t.key}' href='{html.escape(t.link)}'>"
            f"<b>{t.value:,}</b>{html.escape(t.label)}</a></li>"
            for t in tiles
        )
        sections.append(f"<section class='sb-group'><h3>{html.escape(title)}</h3><ul>{items}</ul></section>")
    return f"<div class='sb-tiles'>{''.join(sections)}</div>"
