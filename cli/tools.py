"""`switchboard tools`: the synced tool inventory."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, run, table


def register(commands: Commands) -> None:
    tools = commands.add("tools", _tools, "list synced tools")
    tools.add_argument("--connector")
    tools.add_argument("--agent")


def _tools(args: argparse.Namespace) -> None:
    rows = run(args, lambda s: s.tool_list(connector=args.connector, agent=args.agent))
    emit(args, rows, table(rows, ["connector", "agent", "name", "description"]))
