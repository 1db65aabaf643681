"""The tool playground page: generated form or raw JSON, Call, and the rendered result."""

from __future__ import annotations

import base64
import html
import json

import panel as pn
import param

from core.errors import SwitchboardError
from dashboard.models.playground import Playground, ResultPart
from dashboard.views.components import ANY, CARD, alert, html_pane, text_block
from dashboard.views.feedback import attempt, notify_error
from dashboard.views.schema_form import ObjectEditor, form_for

SHARED_CREDENTIAL, CHOOSE = "(shared credential)", "(choose)"


class PlaygroundPage(pn.viewable.Viewer):
    playground = param.ClassSelector(class_=Playground)

    def __init__(self, initial: dict[str, str] | None = None, **params):
        params.setdefault("playground", Playground())
        super().__init__(**params)
        self._initial = initial or {}
        pg = self.playground
        self._agent = pn.widgets.Select(label="As agent", options={SHARED_CREDENTIAL: ANY}, width=220)
        self._connector = pn.widgets.Select(label="Server", options={CHOOSE: ANY}, width=220)
        self._tool = pn.widgets.Select(label="Tool", options={CHOOSE: ANY}, width=260)
        self._mode = pn.widgets.RadioButtonGroup.from_param(
            pg.param.raw_mode, options={"Form": False, "Raw JSON": True}
        )
        self._raw = pn.widgets.TextAreaInput.from_param(
            pg.param.raw_json,
            label="Arguments (JSON object)",
            height=220,
            sizing_mode="stretch_width",
            visible=pg.param.raw_mode,
        )
        self._form: ObjectEditor = form_for([])
        self._form_area = pn.Column(sizing_mode="stretch_width", visible=pg.param.raw_mode.rx().rx.not_())
        # Hidden from a role that may not call; a forged click is refused by the services all the same.
        self._call = pn.widgets.Button(
            label="Call", button_type="primary", width=120, disabled=True, visible=pg.may("call_tool")
        )
        self._call.on_click(self._call_tool)
        self._following_model = False  # True while widgets are set from the model, not by the operator
        self._agent.param.watch(self._where_changed, "value")
        self._connector.param.watch(self._where_changed, "value")
        self._tool.param.watch(self._tool_changed, "value")
        pg.param.watch(self._show_choices, ["agent_names", "connector_names", "tool_names"])
        pg.param.watch(self._build_form, "fields")
        pg.param.watch(self._mode_changed, "raw_mode")
        pn.state.onload(self._load)

    async def _load(self) -> None:
        """Load the choices; /playground?agent=…&connector=…&tool=… opens straight on a tool."""
        pg = self.playground
        await attempt(pg.load_choices())
        agent = self._initial.get("agent") if self._initial.get("agent") in pg.agent_names else None
        connector = (
            self._initial.get("connector") if self._initial.get("connector") in pg.connector_names else None
        )
        if connector:
            await attempt(pg.choose(connector=connector, agent=agent))
        tool = self._initial.get("tool")
        if tool in pg.tool_names:
            await attempt(pg.choose_tool(tool))
        self._follow_model()

    def _show_choices(self, *_events) -> None:
        self._follow_model()

    def _follow_model(self) -> None:
        """Show the model's choices and selection without treating that as the operator's input."""
        pg = self.playground
        self._following_model = True
        try:
            self._agent.options = {SHARED_CREDENTIAL: ANY, **{a: a for a in pg.agent_names}}
            self._connector.options = {CHOOSE: ANY, **{c: c for c in pg.connector_names}}
            self._tool.options = {CHOOSE: ANY, **{t: t for t in pg.tool_names}}
            self._agent.value, self._connector.value, self._tool.value = (
                pg.agent or ANY,
                pg.connector or ANY,
                pg.tool or ANY,
            )
        finally:
            self._following_model = False
        self._call.disabled = pg.definition is None

    def _where_changed(self, _event) -> None:
        if not self._following_model:
            pn.state.execute(self._choose_where)

    def _tool_changed(self, _event) -> None:
        if not self._following_model:
            pn.state.execute(self._choose_tool)

    async def _choose_where(self) -> None:
        await attempt(
            self.playground.choose(connector=self._connector.value or None, agent=self._agent.value or None)
        )
        self._follow_model()

    async def _choose_tool(self) -> None:
        await attempt(self.playground.choose_tool(self._tool.value or None))
        self._follow_model()

    def _build_form(self, _event=None) -> None:
        self._form = form_for(self.playground.fields)
        self._form_area.objects = (
            [self._form.panel]
            if self.playground.fields
            else [
                html_pane(
                    "<p class='sb-muted'>This tool takes no arguments.</p>"
                    if self.playground.definition
                    else ""
                )
            ]
        )

    def _mode_changed(self, event) -> None:
        if event.new:  # entering raw mode: start from what the form holds, when it is complete
            try:
                self.playground.raw_json = json.dumps(self._form.value() or {}, indent=2)
            except SwitchboardError:
                pass

    async def _call_tool(self, _event) -> None:
        if not self.playground.raw_mode:
            try:
                self.playground.arguments = self._form.value() or {}
            except SwitchboardError as exc:
                notify_error(str(exc))
                return
        self._call.disabled = True
        try:
            await attempt(self.playground.call())
        finally:
            self._call.disabled = False

    @param.depends("playground.definition")
    def _description(self):
        definition = self.playground.definition
        if not definition:
            return pn.Spacer(height=0)
        return html_pane(
            f"<p>{html.escape(str(definition.get('description') or ''))}</p>", sizing_mode="stretch_width"
        )

    @param.depends("playground.outcome")
    def _result(self):
        outcome = self.playground.outcome
        if outcome is None:
            return pn.Spacer(height=0)
        latency = f"{outcome.latency_ms:.1f} ms"
        header = (
            alert(f"The tool reported an error (isError) after {latency}.", ok=False)
            if outcome.is_error
            else alert(f"Answered in {latency}.", ok=True)
        )
        parts = [_render(part) for part in self.playground.result_parts()]
        return pn.Column("### Result", header, *parts, sizing_mode="stretch_width", styles=CARD)

    def __panel__(self):
        return pn.Column(
            "## Tool playground",
            html_pane(
                "<p class='sb-muted'>Calls are made as the chosen agent and recorded in the audit log.</p>"
            ),
            pn.Row(self._agent, self._connector, self._tool),
            self._description,
            self._mode,
            self._form_area,
            self._raw,
            self._call,
            html_pane(
                "<p class='sb-muted'>Your role may look at tools here, not call them.</p>",
                visible=not self.playground.may("call_tool"),
            ),
            self._result,
            sizing_mode="stretch_width",
        )


def _render(part: ResultPart) -> pn.viewable.Viewable:
    if part.kind == "image":
        # Re-encoded from the decoded bytes, with a MIME type from a fixed list: nothing of the server's
        # text reaches the markup.
        data = base64.b64encode(part.data).decode("ascii")
        return html_pane(
            f"<img class='sb-image' alt='image result' src='data:{part.mime_type};base64,{data}'>"
        )
    if part.kind == "json":
        return pn.pane.JSON(part.value, depth=-1, theme="light", sizing_mode="stretch_width")
    return text_block(part.text)
