"""`switchboard call`: call a tool as an agent; exit 4 when the tool ran but returned `isError`."""

from __future__ import annotations

import argparse
import json

from cli._plumbing import Commands, emit, run
from core.errors import ConfigurationError

TOOL_ERROR_EXIT = 4  # the tool ran and reported an error: not the CLI's failure (README's exit codes)


def register(commands: Commands) -> None:
    call = commands.add("call", _call, "call a tool as an agent")
    call.add_argument("connector")
    call.add_argument("tool")
    call.add_argument("--agent")
    call.add_argument("--args", default="{}", help="arguments as a JSON object")


def _call(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"--args is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(arguments, dict):
        raise ConfigurationError("--args must be a JSON object")
    outcome = run(args, lambda s: s.call_tool(args.connector, args.tool, arguments, agent=args.agent))
    emit(args, outcome.result, outcome.text())
    return TOOL_ERROR_EXIT if outcome.is_error else 0
