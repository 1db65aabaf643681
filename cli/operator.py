"""`switchboard operator add|list|remove`: who may sign in to the dashboard with `--auth basic`.

Passwords are read from stdin (`--password-stdin`) or typed at a prompt, never taken from argv; only
their Argon2id hash is stored. The roles are `core.roles.ROLES`.
"""

from __future__ import annotations

import argparse
import sys

from cli._plumbing import Commands, emit, read_secret, run, table
from core.errors import ConfigurationError
from core.roles import ROLES


def register(commands: Commands) -> None:
    operator = commands.group("operator", "manage who may sign in to the dashboard (--auth basic)")
    add = operator.add("add", _add, "add an operator, or set an existing one's role and password")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in ROLES], required=True)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (else: prompt)"
    )
    # Refused with a reason (argparse would take it for --password-stdin and echo the value).
    add.add_argument("--password", dest="password_in_argv", help=argparse.SUPPRESS)
    operator.add("list", _list, "list operators and their roles")
    remove = operator.add("remove", _remove, "remove an operator")
    remove.add_argument("name")


def _add(args: argparse.Namespace) -> None:
    password = _password(args)
    added = run(args, lambda s: s.add_operator(args.name, args.role, password))
    emit(args, added.as_dict(), f"operator {added.name} may sign in as {added.role}")


def _password(args: argparse.Namespace) -> str:
    if args.password_in_argv is not None:
        raise ConfigurationError(
            "a password in the command line ends up in shell history and process lists",
            hint="use --password-stdin or the prompt",
        )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigurationError("no password on stdin")
        return password
    if not sys.stdin.isatty():
        raise ConfigurationError(
            "no terminal to ask for the password", hint="pipe it in with --password-stdin"
        )
    password = read_secret("password")
    if read_secret("the same password again") != password:
        raise ConfigurationError("the two passwords differ", hint="run the command again")
    return password


def _list(args: argparse.Namespace) -> None:
    rows = [o.as_dict() for o in run(args, lambda s: s.list_operators())]
    emit(args, rows, table(rows, ["name", "role", "created_at", "updated_at"]))


def _remove(args: argparse.Namespace) -> None:
    run(args, lambda s: s.remove_operator(args.name))
    emit(args, {"removed": args.name}, f"removed operator {args.name}")
