"""`switchboard sync`: fetch servers' tool lists into the inventory, with a progress bar on a terminal."""

from __future__ import annotations

import argparse
import sys

from cli._plumbing import Commands, emit, run, table, wants_json
from core.errors import ConfigurationError


def register(commands: Commands) -> None:
    sync = commands.add("sync", _sync, "sync tools from servers")
    sync.add_argument("connectors", nargs="*")
    sync.add_argument("--all", action="store_true")
    sync.add_argument("--agent")


def _sync(args: argparse.Namespace) -> int:
    if not args.connectors and not args.all:
        raise ConfigurationError("name connectors to sync, or --all")
    progress = _Progress(enabled=sys.stderr.isatty() and not wants_json(args))

    async def work(service):
        results = []
        names = None if args.all else args.connectors
        async for result in service.sync_many(names, agent=args.agent, on_start=progress.start):
            results.append(result)
            progress.advance(result)
        return results

    results = run(args, work)
    progress.finish()
    rows = [r.as_dict() for r in results]
    emit(args, rows, table(rows, ["connector", "agent", "ok", "tools", "changed", "error"]))
    return 0 if all(r.ok for r in results) else 1


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        self.total = total
        self._draw("")

    def advance(self, result) -> None:
        self.done += 1
        self._draw(f"{result.connector}: {'ok' if result.ok else 'failed'}")

    def finish(self) -> None:
        if self.enabled and self.total:
            sys.stderr.write("\n")

    def _draw(self, last: str) -> None:
        if not self.enabled or not self.total:
            return
        width = 30
        filled = int(width * self.done / self.total)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {last[:40]:<40}"
        )
        sys.stderr.flush()
