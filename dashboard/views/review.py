"""The tool review page: pick a tool list, read each held-back tool's definition side by side with
the approved one, approve it (or all of them)."""

from __future__ import annotations

import html

import panel as pn
import param

from dashboard.models.review import DiffSection, ToolReviews
from dashboard.views.components import CARD, html_pane, status_badge
from dashboard.views.feedback import attempt

DIFF_CSS = """
.sb-diff { width: 100%; border-collapse: collapse; table-layout: fixed; margin: 4px 0 12px 0;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.85em; }
.sb-diff caption { caption-side: top; text-align: left; font-family: system-ui, sans-serif; font-weight: 600;
  font-size: 1.1em; color: #212529; padding: 4px 0; }
.sb-diff th { text-align: left; background: #f1f3f5; padding: 2px 6px; font-family: system-ui, sans-serif; }
.sb-diff td { vertical-align: top; padding: 0 6px; white-space: pre-wrap; overflow-wrap: anywhere;
  border-left: 1px solid #dee2e6; }
.sb-diff del { background: #fbe9eb; color: #58151c; text-decoration: none; }
.sb-diff ins { background: #e8f4ee; color: #0a3622; text-decoration: none; }
.sb-unchanged { color: #495057; }
"""


class ReviewPage(pn.viewable.Viewer):
    reviews = param.ClassSelector(class_=ToolReviews)

    def __init__(self, connector: str | None = None, agent: str | None = None, **params):
        params.setdefault("reviews", ToolReviews())
        super().__init__(**params)
        self._initial = (connector or None, agent or None)
        self._list = pn.widgets.Select(label="Tool list", options={"(choose)": None}, width=420)
        self._list.param.watch(self._choose_list, "value")
        self._tool = pn.widgets.Select(label="Tool", options=[], width=260)
        self._tool.param.watch(lambda event: setattr(self.reviews, "tool", event.new or None), "value")
        self._approve = pn.widgets.Button(label="Approve this tool", button_type="primary", align="end")
        self._approve.on_click(self._approve_one)
        self._approve_all = pn.widgets.Button(label="Approve all", align="end")
        self._approve_all.on_click(self._approve_every)
        self.reviews.param.watch(self._show_queue, "queue")
        self.reviews.param.watch(self._show_reviews, ["reviews", "tool"])
        pn.state.onload(self._first_load)

    async def _first_load(self) -> None:
        await attempt(self.reviews.load_queue())
        connector, agent = self._initial
        if connector:
            if (connector, agent) in self._list.options.values():
                self._list.value = (connector, agent)  # its watcher loads the list
            else:  # nothing held back there (any more): say so
                await attempt(self.reviews.choose(connector, agent))

    def _show_queue(self, _event=None) -> None:
        options: dict[str, tuple[str, str | None] | None] = {"(choose)": None}
        for t in self.reviews.queue:
            held = ", ".join(
                part
                for part in (
                    f"{t.quarantined} quarantined" if t.quarantined else "",
                    f"{t.pending} awaiting approval" if t.pending else "",
                )
                if part
            )
            options[f"{_name(t.connector, t.agent)} — {held}"] = (t.connector, t.agent)
        current = (self.reviews.connector, self.reviews.agent)
        if current[0] and current not in options.values():  # just approved: it stays chosen
            options[f"{_name(*current)} — nothing held back"] = current
        self._list.options = options

    async def _choose_list(self, event) -> None:
        connector, agent = event.new or (None, None)
        await attempt(self.reviews.choose(connector, agent))

    def _show_reviews(self, *_events) -> None:
        names = [r.name for r in self.reviews.reviews]
        if self._tool.options != names:
            self._tool.options = names
        if self.reviews.tool and self._tool.value != self.reviews.tool:
            self._tool.value = self.reviews.tool
        current = self.reviews.current
        self._approve.label = f"Approve {current.name}" if current else "Approve this tool"
        self._approve.disabled = current is None
        count = len(names)
        self._approve_all.label = f"Approve all {count} tools of this list" if count > 1 else "Approve all"
        self._approve_all.disabled = count < 2

    async def _approve_one(self, _event) -> None:
        current = self.reviews.current
        if current is not None:
            await attempt(
                self.reviews.approve([current.name]),
                success=f"Approved {current.name}; agents can use it again.",
            )

    async def _approve_every(self, _event) -> None:
        await attempt(self.reviews.approve(None), success=lambda names: f"Approved {len(names)} tools.")

    @param.depends("reviews.reviews", "reviews.tool", "reviews.connector")
    def _body(self):
        r = self.reviews
        if not r.connector:
            return html_pane(
                "<p>Nothing is held back for review.</p>"
                if not r.queue
                else "<p class='sb-muted'>Choose a tool list.</p>"
            )
        if not r.reviews:
            return html_pane(f"<p>Every tool of {html.escape(r.connector)} is approved.</p>")
        current = r.current
        if current is None:
            return pn.Spacer(height=0)
        approved = (
            "the approved definition"
            if current.approved is not None
            else (
                "nothing approved yet"
                if current.state == "pending"
                else "the approved definition (no longer kept)"
            )
        )
        header = html_pane(
            f"<h3>{html.escape(current.name)} {status_badge(current.state)}</h3>"
            f"<p>Left: {approved}"
            + (f" ({_approval(current.approved_by)})" if current.approved is not None else "")
            + ". Right: what the server serves now. The gateway hides this tool from agents until it is approved.</p>"
        )
        return pn.Column(header, *[_section(s) for s in r.diff()], styles=CARD, sizing_mode="stretch_width")

    def _approvals(self) -> list[pn.widgets.Button]:
        """The approve buttons, for a role that may approve (`core/roles.py`); others only look."""
        return [self._approve, self._approve_all] if self.reviews.may("approve") else []

    def __panel__(self):
        return pn.Column(
            "## Tool review",
            html_pane(
                "<p class='sb-muted'>Tools whose definition changed since it was approved are quarantined: "
                "agents neither see nor call them through the gateway until an admin approves the new "
                "definition. New tools of connectors with manual approval wait here too.</p>"
            ),
            pn.Row(self._list, self._tool, *self._approvals()),
            self._body,
            sizing_mode="stretch_width",
        )


def _approval(by: str | None) -> str:
    return (
        "approved automatically by its first sync" if by == "auto" else f"approved by {html.escape(by or '')}"
    )


def _name(connector: str, agent: str | None) -> str:
    return f"{connector} ({agent})" if agent else connector


def _section(section: DiffSection) -> pn.pane.HTML:
    """One part of the definition as a two-column table; changed lines are marked by <del>/<ins>
    and by a − / + sign, not by colour alone."""
    state = "changed" if section.changed else "unchanged"
    rows = (
        "".join(
            f"<tr>{_cell(line.before, '−' if line.kind in ('changed', 'removed') else '', 'del')}"
            f"{_cell(line.after, '+' if line.kind in ('changed', 'added') else '', 'ins')}</tr>"
            for line in section.lines
        )
        or "<tr><td>(none)</td><td>(none)</td></tr>"
    )
    return html_pane(
        f"<table class='sb-diff'><caption>{html.escape(section.title)} "
        f"<span class='{'' if section.changed else 'sb-unchanged'}'>({state})</span></caption>"
        "<thead><tr><th scope='col'>approved</th><th scope='col'>current</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>",
        stylesheets=[DIFF_CSS],
        sizing_mode="stretch_width",
    )


def _cell(text: str | None, sign: str, tag: str) -> str:
    if text is None:
        return "<td></td>"
    escaped = html.escape(text)
    return f"<td><{tag}>{sign} {escaped}</{tag}></td>" if sign else f"<td>  {escaped}</td>"
