"""Small building blocks shared by the pages."""

from __future__ import annotations

import html
from collections.abc import Mapping

import panel as pn
import param
from panel.custom import JSComponent

from dashboard.views.tables import TONES

# Panel renders every component in its own shadow root, so page-wide CSS does not reach inside: each
# HTML pane carries this stylesheet, and containers get inline styles.
STYLESHEET = """
.sb-muted { color: #6c757d; }
.sb-error { color: #b02a37; }
.sb-facts th { text-align: left; padding-right: 16px; font-weight: 600; vertical-align: top; }
.sb-facts td { word-break: break-all; }
.sb-badge { border-radius: 10px; padding: 1px 8px; font-size: 0.85em; margin-left: 6px; }
.sb-ok { background: #d1e7dd; color: #0a3622; } .sb-warn { background: #fff3cd; color: #664d03; }
.sb-bad { background: #f8d7da; color: #58151c; } .sb-idle { background: #e9ecef; color: #2b2f32; }
.sb-text { white-space: pre-wrap; background: #f8f9fa; padding: 6px; border-radius: 4px; margin: 0; }
.sb-alert { padding: 12px 16px; border-radius: 6px; border: 1px solid; margin: 0; }
.sb-alert-ok { background: #d1e7dd; border-color: #a3cfbb; color: #0a3622; }
.sb-alert-bad { background: #f8d7da; border-color: #f1aeb5; color: #58151c; }
.sb-image { max-width: 320px; min-width: 32px; image-rendering: pixelated; border: 1px solid #dee2e6; }
"""
CARD = {"border": "1px solid #dee2e6", "border-radius": "6px", "padding": "8px 12px", "margin": "6px 0"}
NESTED = {"border-left": "3px solid #dee2e6", "padding-left": "8px"}


def html_pane(markup: str, **options) -> pn.pane.HTML:
    """An HTML pane with the dashboard's styles; `markup` must already be escaped where untrusted."""
    return pn.pane.HTML(markup, stylesheets=[STYLESHEET, *options.pop("stylesheets", [])], **options)


class BrowserNavigator(JSComponent):
    """Sends the browser to `url` by full-page navigation.

    A Panel page talks to the server over a websocket, so it cannot answer a click with a 302; the
    authorization server has to be reached by the browser itself. Only http(s) URLs are followed.
    """

    url = param.String(default="", doc="Set to navigate; the page is left right away.")

    _esm = """
    export function render({ model }) {
      const go = () => {
        if (!model.url) return
        const target = new URL(model.url, window.location.href)
        if (target.protocol === "https:" || target.protocol === "http:") window.location.assign(target.href)
      }
      model.on("url", go)
      go()
      const anchor = document.createElement("span")
      anchor.hidden = true
      return anchor
    }
    """

    def go(self, url: str) -> None:
        self.url = url


def facts_table(facts: Mapping[str, str] | None, empty: str = "") -> pn.pane.HTML:
    """A two-column table of label → value, every value escaped."""
    if not facts:
        return html_pane(f"<p class='sb-muted'>{html.escape(empty)}</p>" if empty else "")
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()
    )
    return html_pane(f"<table class='sb-facts'>{rows}</table>", sizing_mode="stretch_width")


def text_block(text: str) -> pn.pane.HTML:
    """Untrusted text (tool output, server messages) shown verbatim, never interpreted as markup."""
    return html_pane(f"<pre class='sb-text'>{html.escape(text)}</pre>", sizing_mode="stretch_width")


def alert(text: str, ok: bool) -> pn.pane.HTML:
    """A green or red banner; `text` is escaped (it may quote what a remote server said)."""
    tone = "ok" if ok else "bad"
    return html_pane(
        f"<div class='sb-alert sb-alert-{tone}' role='{'status' if ok else 'alert'}'>{html.escape(text)}</div>",
        sizing_mode="stretch_width",
    )


def heading(text: str, level: int = 3) -> pn.pane.HTML:
    return html_pane(f"<h{level}>{html.escape(text)}</h{level}>")


def status_badge(label: str) -> str:
    """HTML of a coloured badge for a status label (the same colours as the tables' badges)."""
    return f"<span class='sb-badge sb-{TONES.get(label, 'idle')}'>{html.escape(label)}</span>"


ANY = ""  # the value of a picker's "no particular one" choice


class ChoicePickers:
    """Connector and agent Selects that follow the choices of a `WithChoices` model."""

    def __init__(
        self, model, *, any_connector: str = "(all servers)", any_agent: str = "(all agents)"
    ) -> None:
        self._model = model
        self._any_connector, self._any_agent = any_connector, any_agent
        self.connector = pn.widgets.Select(label="Server", options={any_connector: ANY}, width=220)
        self.agent = pn.widgets.Select(label="Agent", options={any_agent: ANY}, width=220)
        model.param.watch(self._follow, ["connector_names", "agent_names"])

    def _follow(self, *_events) -> None:
        self.connector.options = {self._any_connector: ANY, **{n: n for n in self._model.connector_names}}
        self.agent.options = {self._any_agent: ANY, **{n: n for n in self._model.agent_names}}

    @property
    def chosen_connector(self) -> str | None:
        return self.connector.value or None

    @property
    def chosen_agent(self) -> str | None:
        return self.agent.value or None
