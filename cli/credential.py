"""`switchboard credential set`: a bearer token or API key, read from stdin (never from argv)."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, read_secret, run


def register(commands: Commands) -> None:
    credential = commands.group("credential", "static credentials")
    set_ = credential.add("set", _set, "store a bearer token or API key read from stdin")
    set_.add_argument("connector")
    set_.add_argument("--agent")
    set_.add_argument("--secret-stdin", action="store_true", required=True)


def _set(args: argparse.Namespace) -> None:
    secret = read_secret("secret")
    status = run(args, lambda s: s.set_secret(args.connector, secret, agent=args.agent))
    emit(
        args,
        status.as_dict(),
        f"stored credential for {args.connector}"
        + (f" as {args.agent}" if args.agent else "")
        + f": {status.status}",
    )
