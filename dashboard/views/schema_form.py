"""Widgets for a tool's arguments, built from the fields of its inputSchema.

Each editor keeps the argument's name only as a dictionary key and as the widget's label text; no
param/Panel object is ever created with an argument name as a keyword, so an argument called `name`
(or `value`, `disabled` …) cannot clash with the widgets' own parameters.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

import panel as pn

from core.errors import ConfigurationError
from dashboard.models.schema_form import (
    ARRAY,
    BOOLEAN,
    ENUM,
    INTEGER,
    JSON,
    NUMBER,
    OBJECT,
    FieldSpec,
    collect,
    is_empty,
)
from dashboard.views.components import NESTED, html_pane

_MAX_SLIDER_STEPS = 100  # a bounded range with more steps than this gets a spinner instead
_UNSET = "(not set)"


class FieldEditor:
    """One argument's widget(s); `value()` is what goes into the arguments object (None = leave out)."""

    def __init__(self, spec: FieldSpec, path: str) -> None:
        self.spec = spec
        self.path = path

    @property
    def panel(self) -> pn.viewable.Viewable:
        raise NotImplementedError

    def value(self) -> Any:
        raise NotImplementedError


class WidgetEditor(FieldEditor):
    """A single widget whose `value` is the argument as is."""

    def __init__(self, spec: FieldSpec, path: str, widget: pn.widgets.Widget) -> None:
        super().__init__(spec, path)
        self.widget = widget

    @property
    def panel(self) -> pn.viewable.Viewable:
        return self.widget

    def value(self) -> Any:
        return self.widget.value


class JsonEditor(WidgetEditor):
    """Anything the form cannot express (unions, free-form maps): typed in as JSON."""

    def value(self) -> Any:
        text = self.widget.value.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{self.path or 'value'}: not valid JSON ({exc.msg}).") from None


class ObjectEditor(FieldEditor):
    """Nested fields; an optional object is only sent when its "include" box is ticked."""

    def __init__(self, spec: FieldSpec, path: str, fields: tuple[FieldSpec, ...] | None = None) -> None:
        super().__init__(spec, path)
        self.fields = fields if fields is not None else spec.properties
        self.children = {f.key: editor_for(f, f"{path}{f.key}") for f in self.fields}
        self.include = None
        if path and not spec.required:
            self.include = pn.widgets.Checkbox(label=f"include {spec.key}", value=False)
        body = pn.Column(
            *[c.panel for c in self.children.values()],
            sizing_mode="stretch_width",
            visible=self.include.param.value if self.include else True,
        )
        self._panel = (
            body
            if not path
            else pn.Column(
                _heading(spec),
                *([self.include] if self.include else []),
                body,
                styles=NESTED,
                sizing_mode="stretch_width",
            )
        )

    @property
    def panel(self) -> pn.viewable.Viewable:
        return self._panel

    def value(self) -> dict[str, Any] | None:
        if self.include is not None and not self.include.value:
            return None
        prefix = f"{self.path}." if self.path else ""
        return collect(self.fields, {key: child.value() for key, child in self.children.items()}, prefix)


class ArrayEditor(FieldEditor):
    """A list of item editors with Add / Remove."""

    def __init__(self, spec: FieldSpec, path: str) -> None:
        super().__init__(spec, path)
        self.items: list[FieldEditor] = []
        self._rows = pn.Column(sizing_mode="stretch_width")
        add = pn.widgets.Button(label=f"Add {spec.key or 'item'}", width=160)
        add.on_click(lambda _event: self.add_item())
        self._panel = pn.Column(_heading(spec), self._rows, add, styles=NESTED, sizing_mode="stretch_width")

    @property
    def panel(self) -> pn.viewable.Viewable:
        return self._panel

    def add_item(self) -> FieldEditor:
        position = len(self.items)
        item_spec = dataclasses.replace(self.spec.items, title=f"{self.spec.key or 'item'} #{position + 1}")
        item = editor_for(item_spec, f"{self.path}[{position}]")
        remove = pn.widgets.Button(label="Remove", width=90, align="end")
        row = pn.Row(item.panel, remove, sizing_mode="stretch_width")

        def drop(_event) -> None:
            self.items.remove(item)
            self._rows.remove(row)

        remove.on_click(drop)
        self.items.append(item)
        self._rows.append(row)
        return item

    def value(self) -> list[Any] | None:
        values = [item.value() for item in self.items]
        return [v for v in values if not is_empty(v)] or None


def editor_for(spec: FieldSpec, path: str) -> FieldEditor:
    if spec.kind == OBJECT:
        return ObjectEditor(spec, path)
    if spec.kind == ARRAY and spec.items is not None and spec.items.kind == ENUM:
        return WidgetEditor(
            spec,
            path,
            _widget(
                pn.widgets.MultiChoice, spec, options=list(spec.items.options), value=list(spec.default or [])
            ),
        )
    if spec.kind == ARRAY and spec.items is not None:
        return ArrayEditor(spec, path)
    if spec.kind == JSON:
        initial = json.dumps(spec.default) if spec.has_default else ""
        return JsonEditor(
            spec, path, _widget(pn.widgets.TextAreaInput, spec, value=initial, placeholder="a JSON value")
        )
    return WidgetEditor(spec, path, _scalar_widget(spec))


def form_for(fields: tuple[FieldSpec, ...] | list[FieldSpec]) -> ObjectEditor:
    """The root editor of a tool's arguments; its `value()` is the arguments object."""
    root = FieldSpec(key="", kind=OBJECT, required=True, properties=tuple(fields))
    return ObjectEditor(root, "")


def _scalar_widget(spec: FieldSpec) -> pn.widgets.Widget:
    default = spec.default if spec.has_default else None
    if spec.kind == BOOLEAN:
        return _widget(pn.widgets.Checkbox, spec, value=bool(default))
    if spec.kind == ENUM:
        options = {str(o): o for o in spec.options}
        if not spec.required:
            options = {_UNSET: None, **options}
        value = default if default in spec.options else next(iter(options.values()))
        return _widget(pn.widgets.Select, spec, options=options, value=value)
    if spec.kind in (INTEGER, NUMBER):
        return _number_widget(spec, default)
    return _widget(pn.widgets.TextInput, spec, value="" if default is None else str(default))


def _number_widget(spec: FieldSpec, default: Any) -> pn.widgets.Widget:
    """A slider for a required number with a small range, else a spinner; both keep the bounds."""
    integer = spec.kind == INTEGER
    bounds = {k: v for k, v in (("start", spec.minimum), ("end", spec.maximum)) if v is not None}
    if integer:
        bounds = {k: int(v) for k, v in bounds.items()}
    span = (spec.maximum - spec.minimum) if spec.bounded else None
    if spec.required and span and (not integer or span <= _MAX_SLIDER_STEPS):
        value = default if default is not None else bounds["start"]
        if integer:
            return _widget(pn.widgets.IntSlider, spec, value=int(value), **bounds)
        return _widget(
            pn.widgets.FloatSlider, spec, value=float(value), step=span / _MAX_SLIDER_STEPS, **bounds
        )
    spinner = pn.widgets.IntInput if integer else pn.widgets.FloatInput
    return _widget(spinner, spec, value=default, placeholder="not set", **bounds)


def _widget(widget_type: type[pn.widgets.Widget], spec: FieldSpec, **options: Any) -> pn.widgets.Widget:
    """`widget_type` labelled with the argument's name and its description. Both go into the label,
    which Bokeh renders as text: Panel's `description` tooltip renders Markdown with raw HTML, and the
    description is whatever the server wrote (a script or a remote image must not run or load)."""
    label = f"{spec.label} — {spec.description}" if spec.description else spec.label
    return widget_type(label=label, **options)


def _heading(spec: FieldSpec) -> pn.pane.HTML:
    return html_pane(
        f"<b>{html.escape(spec.label)}</b> <span class='sb-muted'>{html.escape(spec.description)}</span>"
    )
