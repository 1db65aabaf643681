"""`switchboard` — the command-line face of the services API.

Output is for people by default and JSON with `--json` (before or after the subcommand). Secrets are
read from stdin, never from argv. Exit codes: 0 success, 4 a tool ran but returned `isError`, other
non-zero codes with a one-line reason on stderr (see `_EXIT_CODES`).

Each command group is a module of this package with a `register(commands)` function, listed once in
`GROUPS`. A group module imports only argparse plumbing at the top; what a command needs (the
services, the dashboard) loads when that command runs, so a command pays only for what it uses.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cli._plumbing import Commands
from core import errors

# Every command group, in `--help` order. A new group is a module with `register(commands)` and
# one line here.
GROUPS = (
    "cli.connector",
    "cli.agent",
    "cli.credential",
    "cli.connection",
    "cli.sync",
    "cli.tools",
    "cli.call",
    "cli.health",
    "cli.keys",
    "cli.serve",
    "cli.gateway",
    "cli.access",
    "cli.store",
)

_EXIT_CODES: tuple[tuple[type[errors.SwitchboardError], int], ...] = (
    (errors.ConfigurationError, 2),
    (errors.AuthError, 3),
    (errors.StoreBusy, 6),
    (errors.StoreError, 7),
    (errors.TransportError, 5),
    (errors.McpError, 5),
    (errors.NetworkPolicyError, 2),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args) or 0
    except errors.SwitchboardError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return next((code for kind, code in _EXIT_CODES if isinstance(exc, kind)), 1)
    except KeyboardInterrupt:
        print("switchboard: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS keeps a value given before the subcommand from being reset by the subparser's default.
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--store",
        default=argparse.SUPPRESS,
        help="the store: a DuckDB file or a postgresql:// URL (default: SWITCHBOARD_STORE)",
    )

    parser = argparse.ArgumentParser(prog="switchboard", parents=[common], description=__doc__.split("\n")[0])
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND"), common)
    for group in GROUPS:
        importlib.import_module(group).register(commands)
    return parser
