"""The tool inventory page: a store-paged table with header filters, search and a schema viewer."""

from __future__ import annotations

import html
from typing import ClassVar
from urllib.parse import urlencode

import panel as pn
import param

from dashboard.models.tools import FLAGS, SORTABLE, ToolInventory
from dashboard.views.components import CARD, ChoicePickers, html_pane
from dashboard.views.feedback import attempt
from dashboard.views.tables import data_table

TITLES = {
    "connector": "server",
    "agent": "agent",
    "name": "tool",
    "description": "description",
    "parameter_count": "params",
    "read_only": "read-only",
    "destructive": "destructive",
    "last_changed_at": "last changed",
    "drift": "changed",
}
# Annotation hints and drift as words (nothing shown for False), filterable as yes / no / either by
# a three-state checkbox in the header, named for screen readers.
FLAG_LABELS = {"read_only": "read-only", "destructive": "⚠ destructive", "drift": "⚠ changed"}
FLAG_FILTERS = {
    flag: {
        "type": "tickCross",
        "tristate": True,
        "indeterminateValue": None,
        "elementAttributes": {
            "aria-label": f"only {TITLES[flag]} tools (click again: only not {TITLES[flag]})"
        },
    }
    for flag in FLAGS
}


class StorePagedTabulator(pn.widgets.Tabulator):
    """Tabulator with `pagination='remote'` whose pages come from a store query.

    `value` holds only the current page (indexed by row offset) and `total_rows` the number of rows
    over all pages; filtering and sorting were done by the query that produced the page, so they are
    not applied to it again here. Page, sorter and header-filter changes from the browser arrive as
    `page`, `sorters` and `filters`: watch them and load the matching page.
    """

    total_rows = param.Integer(default=0, bounds=(0, None))

    # Python-side only: not a property of the Bokeh model.
    _rename: ClassVar[dict[str, str | None]] = {**pn.widgets.Tabulator._rename, "total_rows": None}

    def __init__(self, value=None, **params):
        super().__init__(value, pagination="remote", **params)

    @property
    def _length(self) -> int:
        return self.total_rows

    def _get_data(self):
        if self.value is None:
            return super()._get_data()
        return self._process_df_and_convert_to_cds(self.value)


class ToolsPage(pn.viewable.Viewer):
    inventory = param.ClassSelector(class_=ToolInventory)

    def __init__(self, **params):
        params.setdefault("inventory", ToolInventory())
        super().__init__(**params)
        inv = self.inventory
        self._table = data_table(
            inv.rows,
            table_type=StorePagedTabulator,
            page_size=inv.page_size,
            titles=TITLES,
            flags=FLAG_LABELS,
            # Narrow flag columns so every column fits a laptop screen; the description takes the rest.
            widths={
                "connector": 130,
                "agent": 80,
                "name": 140,
                "parameter_count": 85,
                "read_only": 95,
                "destructive": 120,
                "last_changed_at": 105,
                "drift": 100,
            },
            header_filters=FLAG_FILTERS,
            sortable={c: c in SORTABLE for c in TITLES},
        )
        self._table.param.watch(self._table_query_changed, ["page", "sorters", "filters"])
        self._table.on_click(self._open_row)
        inv.param.watch(self._show_rows, "rows")
        self._pickers = ChoicePickers(inv)
        self._search = pn.widgets.TextInput(label="Search", placeholder="name or description", width=300)
        for widget in (self._pickers.connector, self._pickers.agent, self._search):
            widget.param.watch(self._filters_changed, "value")
        pn.state.onload(self._first_load)

    async def _first_load(self) -> None:
        # The rows first: they are what the page is for; the pickers' choices can follow.
        await self._reload()
        await attempt(self.inventory.load_choices())

    async def _filters_changed(self, _event) -> None:
        self.inventory.query(
            connector=self._pickers.chosen_connector,
            agent=self._pickers.chosen_agent,
            search=self._search.value.strip(),
        )
        await self._reload()

    async def _table_query_changed(self, *events) -> None:
        changes = {}
        for event in events:
            if event.name == "page" and event.new != self.inventory.page:
                changes["page"] = event.new
            elif event.name == "sorters":
                first = next((s for s in event.new if s.get("field") in SORTABLE), None)
                changes.update(
                    sort=first["field"] if first else "connector",
                    descending=bool(first and first.get("dir") == "desc"),
                )
            elif event.name == "filters":
                changes["filters"] = {
                    f["field"]: bool(f["value"])
                    for f in event.new
                    if f.get("field") in FLAGS and f.get("value") is not None
                }
        if changes:  # a page change this view made itself asks for nothing new
            self.inventory.query(**changes)
            await self._reload()

    async def _reload(self) -> None:
        await attempt(self.inventory.load())

    def _show_rows(self, _event=None) -> None:
        self._table.total_rows = self.inventory.total
        self._table.value = self.inventory.rows
        if self._table.page != self.inventory.page:
            self._table.page = self.inventory.page

    async def _open_row(self, event) -> None:
        row = self._table.value.iloc[event.row]
        await attempt(self.inventory.open(row["connector"], row["name"], agent=row["agent"] or None))

    @param.depends("inventory.total", "inventory.total_is_exact")
    def _count(self):
        total = self.inventory.total
        count = f"{total:,} tool{'' if total == 1 else 's'}"
        if not self.inventory.total_is_exact:
            count = f"More than {total:,} tools match; refine the search to see them all"
        return html_pane(f"<p class='sb-muted'>{count}. Click a row for its full schema.</p>")

    @param.depends("inventory.definition")
    def _definition(self):
        definition = self.inventory.definition
        if not definition:
            return pn.Spacer(height=0)
        title = html.escape(str(definition.get("name", "")))
        try_it = "playground?" + urlencode({k: v for k, v in self.inventory.opened.items() if v})
        return pn.Column(
            html_pane(
                f"<h3>Schema of {title}</h3><p><a href='{html.escape(try_it)}'>Try it in the playground</a></p>"
            ),
            pn.pane.JSON(definition, depth=-1, theme="light", sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            styles=CARD,
        )

    def __panel__(self):
        return pn.Column(
            "## Tools",
            pn.Row(self._pickers.connector, self._pickers.agent, self._search),
            self._count,
            self._table,
            self._definition,
            sizing_mode="stretch_width",
        )
