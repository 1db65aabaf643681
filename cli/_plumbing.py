"""What every command group shares: the subcommand table it registers into, running a piece of work
against the services, and printing the result (a table for people, JSON with `--json`).

Nothing heavy is imported here: `core.services` loads in `run`, when a command actually needs it, so
`--help` and argument errors stay instant and each command pays only for what it uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from core.services import Switchboard

Handler = Callable[[argparse.Namespace], int | None]


class Commands:
    """One level of subcommands. A group module's `register(commands)` adds its commands here;
    `group()` opens a nested level (`connector add|list|remove`)."""

    def __init__(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
        self._subparsers = subparsers
        self._common = common
        self._groups: dict[str, Commands] = {}

    def add(self, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        """A command that runs `handler(args)`; returns its parser for the command's own arguments."""
        sub = self._subparsers.add_parser(name, parents=[self._common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, help: str) -> Commands:
        """A command that only groups subcommands (`switchboard NAME ACTION ...`). Asking again for
        a group that exists returns it, so another module can add to it (`agent token ...`)."""
        if name not in self._groups:
            parser = self._subparsers.add_parser(name, help=help)
            self._groups[name] = Commands(parser.add_subparsers(metavar="ACTION"), self._common)
        return self._groups[name]


def run(args: argparse.Namespace, work: Callable[[Switchboard], Awaitable[Any]]) -> Any:
    """Run `work(service)` on a fresh event loop and close the service afterwards."""
    import asyncio  # here, not at import: `--help` and argument errors need neither

    from core.services import Switchboard
    from core.store.db import Store

    async def go() -> Any:
        # The command's first store session checks the schema: one open of the DuckDB file, not two.
        service = Switchboard(Store.open(getattr(args, "store", None), migrate_on_open=False))
        try:
            return await work(service)
        finally:
            await service.aclose()

    return asyncio.run(go())


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if wants_json(args):
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(text)
    sys.stdout.flush()


def read_secret(what: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{what}: ")
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise ConfigurationError(f"no {what} on stdin")
    return value


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(columns), *(line(r) for r in cells)])


# Exit code when offboarding deleted everything locally but an authorization server did not revoke:
# the operator has tokens to chase (the authorization code, as for other authorization failures).
REVOCATION_FAILED = 3


def emit_offboarding(args: argparse.Namespace, report: Any) -> int | None:
    """Print an `OffboardingReport` — per authorization server, what was revoked, deleted locally
    only, or failed and why — and return `REVOCATION_FAILED` when a revocation failed."""
    lines = [report.summary()]
    for server, removals in report.by_server().items():
        lines.append(f"  {server}")
        for removal in removals:
            whose = f"{removal.connector}" + (f" for {removal.agent}" if removal.agent else " (shared)")
            outcome = removal.outcome.replace("_", " ")
            lines.append(f"    {whose}: {outcome}" + (f" ({removal.reason})" if removal.reason else ""))
    emit(args, report.as_dict(), "\n".join(lines))
    return REVOCATION_FAILED if report.counts()["failed"] else None
