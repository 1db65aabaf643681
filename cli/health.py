"""`switchboard health`: every credential's state (expiry, last refresh, last 401/403 and why)."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, run, table

_COLUMNS = (
    "connector",
    "agent",
    "kind",
    "status",
    "expires_at",
    "last_refresh_at",
    "last_401_at",
    "last_403_at",
    "reason",
)


def register(commands: Commands) -> None:
    commands.add("health", _health, "credential health")


def _health(args: argparse.Namespace) -> None:
    rows = [h.as_dict() for h in run(args, lambda s: s.health())]
    emit(args, rows, table(rows, _COLUMNS))
