"""`switchboard agent add|update|list|offboard|remove`: the agents that credentials and tool calls belong to.

`offboard` revokes everything of an agent — its own credentials at every authorization server that
offers revocation, its gateway tokens — and deletes them here; `remove` does that, then deletes the
agent. Both print what each server did and exit 3 when a revocation failed (deleted here anyway).
"""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, emit_offboarding, run, table


def register(commands: Commands) -> None:
    agent = commands.group("agent", "manage agents")
    add = agent.add("add", _add, "create an agent")
    add.add_argument("name")
    add.add_argument("--description", default="")
    update = agent.add("update", _update, "change an agent's description")
    update.add_argument("name")
    update.add_argument("--description", required=True)
    agent.add("list", _list, "list agents")
    offboard = agent.add(
        "offboard",
        _offboard,
        "revoke and delete the agent's credentials and gateway tokens (keeps the agent)",
    )
    offboard.add_argument("name")
    remove = agent.add("remove", _remove, "offboard the agent, then delete it")
    remove.add_argument("name")


def _add(args: argparse.Namespace) -> None:
    agent = run(args, lambda s: s.add_agent(args.name, args.description))
    emit(args, agent.as_dict(), f"added agent {agent.name}")


def _update(args: argparse.Namespace) -> None:
    agent = run(args, lambda s: s.update_agent(args.name, args.description))
    emit(args, agent.as_dict(), f"updated agent {agent.name}")


def _list(args: argparse.Namespace) -> None:
    rows = [a.as_dict() for a in run(args, lambda s: s.list_agents())]
    emit(args, rows, table(rows, ["name", "description", "created_at"]))


def _offboard(args: argparse.Namespace) -> int | None:
    return emit_offboarding(args, run(args, lambda s: s.offboard_agent(args.name)))


def _remove(args: argparse.Namespace) -> int | None:
    return emit_offboarding(args, run(args, lambda s: s.remove_agent(args.name)))
