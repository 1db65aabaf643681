"""`switchboard agent add|list`: the agents that credentials and tool calls belong to."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, run, table


def register(commands: Commands) -> None:
    agent = commands.group("agent", "manage agents")
    add = agent.add("add", _add, "create an agent")
    add.add_argument("name")
    add.add_argument("--description", default="")
    agent.add("list", _list, "list agents")


def _add(args: argparse.Namespace) -> None:
    agent = run(args, lambda s: s.add_agent(args.name, args.description))
    emit(args, agent.as_dict(), f"added agent {agent.name}")


def _list(args: argparse.Namespace) -> None:
    rows = [a.as_dict() for a in run(args, lambda s: s.list_agents())]
    emit(args, rows, table(rows, ["name", "description", "created_at"]))
