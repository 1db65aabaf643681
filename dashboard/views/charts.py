"""The overview's charts as Bokeh figures (HoloViz's plotting layer, rendered by Panel).

Pure functions of the frames `dashboard.models.overview.OverviewModel` shapes, so they can be built
in a test or a notebook. Every chart has a one-line text summary next to it (`*_summary`): a canvas
says nothing to a screen reader. Colours come from the colour-blind-safe Okabe–Ito palette, and
no chart relies on colour alone (hover names every bar and mark).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool, Span
from bokeh.plotting import figure

# Okabe & Ito (2008), colour-blind safe; orange and vermillion stay for "attention".
PALETTE = ("#0072B2", "#009E73", "#56B4E9", "#CC79A7", "#F0E442", "#000000", "#999999")
ATTENTION, FAILURE, FINE = "#E69F00", "#D55E00", "#009E73"
HEIGHT = 280


def _figure(**options) -> figure:
    plot = figure(
        height=options.pop("height", HEIGHT),
        sizing_mode="stretch_width",
        toolbar_location=None,
        background_fill_color=None,
        border_fill_color=None,
        **options,
    )
    plot.outline_line_color = None
    plot.grid.grid_line_alpha = 0.4
    return plot


def activity_chart(frame: pd.DataFrame, now: datetime) -> figure:
    """Calls per hour over the last 24 hours, stacked by connector; failed calls per hour as a line."""
    hours = sorted(frame["hour"].unique())
    connectors = sorted(frame["connector"].unique())
    calls = frame.pivot_table(index="hour", columns="connector", values="calls", aggfunc="sum", fill_value=0)
    calls = calls.reindex(index=hours, columns=connectors, fill_value=0)
    # Bars and marks stand in the middle of their hour.
    middle = [pd.Timestamp(h) + timedelta(minutes=30) for h in hours]
    source = ColumnDataSource({"hour": middle, **{c: calls[c].tolist() for c in connectors}})
    plot = _figure(
        x_axis_type="datetime",
        x_range=(now - timedelta(hours=24), now + timedelta(minutes=30)),
        title="Calls per hour by connector (bars) and failed calls (line), last 24 hours",
    )
    width = timedelta(minutes=50)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(connectors))]
    bars = plot.vbar_stack(
        connectors, x="hour", width=width, color=colours, source=source, legend_label=connectors
    )
    errors = frame.groupby("hour", as_index=False)["errors"].sum()
    errors["hour"] = errors["hour"] + timedelta(minutes=30)
    line = plot.line(
        "hour",
        "errors",
        source=ColumnDataSource(errors),
        color=FAILURE,
        line_width=3,
        legend_label="failed calls",
    )
    plot.scatter("hour", "errors", source=ColumnDataSource(errors), color=FAILURE, size=7)
    for bar, connector in zip(bars, connectors, strict=True):
        plot.add_tools(
            HoverTool(
                renderers=[bar],
                tooltips=[("connector", connector), ("hour", "@hour{%H:00}"), ("calls", f"@{{{connector}}}")],
                formatters={"@hour": "datetime"},
            )
        )
    plot.add_tools(
        HoverTool(
            renderers=[line],
            tooltips=[("hour", "@hour{%H:00}"), ("failed calls", "@errors")],
            formatters={"@hour": "datetime"},
        )
    )
    plot.y_range.start = 0
    plot.yaxis.axis_label = "calls"
    plot.legend.location = "top_left"
    plot.legend.orientation = "horizontal"
    plot.add_layout(plot.legend[0], "below")
    return plot


def activity_summary(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No tool calls in the last 24 hours."
    busiest = frame.groupby("connector")["calls"].sum().sort_values(ascending=False)
    return (
        f"{int(frame['calls'].sum())} calls in the last 24 hours, {int(frame['errors'].sum())} failed; "
        f"busiest: {busiest.index[0]} ({int(busiest.iloc[0])} calls)."
    )


def expiry_chart(frame: pd.DataFrame, now: datetime) -> figure:
    """Each credential's access-token expiry on a time line; orange ones need an operator."""
    credentials = list(dict.fromkeys(frame["credential"]))[::-1]
    plot = _figure(
        y_range=credentials,
        x_axis_type="datetime",
        height=max(160, 40 + 28 * len(credentials)),
        title="Credential expiry (now and +24 h marked)",
    )
    for label, colour in (("renews itself", FINE), ("needs re-authorization", ATTENTION)):
        part = frame[frame["renews"] == label]
        if not part.empty:
            marks = plot.scatter(
                "expires",
                "credential",
                source=ColumnDataSource(part),
                size=12,
                color=colour,
                marker="circle" if colour == FINE else "triangle",
                legend_label=label,
            )
            plot.add_tools(
                HoverTool(
                    renderers=[marks],
                    tooltips=[
                        ("credential", "@credential"),
                        ("expires", "@expires{%Y-%m-%d %H:%M}"),
                        ("", "@renews"),
                    ],
                    formatters={"@expires": "datetime"},
                )
            )
    for moment, dash in ((now, "solid"), (now + timedelta(hours=24), "dashed")):
        plot.add_layout(Span(location=moment, dimension="height", line_color="#555555", line_dash=dash))
    plot.legend.location = "top_left"
    plot.add_layout(plot.legend[0], "below")
    plot.legend.orientation = "horizontal"
    return plot


def expiry_summary(frame: pd.DataFrame, now: datetime) -> str:
    if frame.empty:
        return "No credential has an expiry."
    manual = frame[frame["renews"] != "renews itself"]
    soon = manual[manual["expires"] <= now + timedelta(hours=24)]
    return (
        f"{len(frame)} credentials expire; {len(manual)} cannot renew themselves, "
        f"{len(soon)} of them within 24 hours."
    )


def tools_chart(frame: pd.DataFrame) -> figure:
    """Tools per connector: usable, quarantined (changed since approval), awaiting approval."""
    connectors = frame["connector"].tolist()[::-1]
    plot = _figure(
        y_range=connectors, height=max(160, 60 + 28 * len(connectors)), title="Tools per connector"
    )
    states = ["approved", "quarantined", "pending"]
    labels = ["usable", "quarantined", "awaiting approval"]
    bars = plot.hbar_stack(
        states,
        y="connector",
        height=0.7,
        source=ColumnDataSource(frame),
        color=[PALETTE[0], ATTENTION, PALETTE[6]],
        legend_label=labels,
    )
    for bar, state, label in zip(bars, states, labels, strict=True):
        plot.add_tools(
            HoverTool(renderers=[bar], tooltips=[("connector", "@connector"), (label, f"@{state}")])
        )
    plot.x_range.start = 0
    plot.legend.orientation = "horizontal"
    plot.add_layout(plot.legend[0], "below")
    return plot


def tools_summary(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No tools synced yet."
    total = int(frame[["approved", "quarantined", "pending"]].sum().sum())
    held = int(frame["quarantined"].sum() + frame["pending"].sum())
    return f"{total} tools on {len(frame)} connectors; {held} held back for review."
