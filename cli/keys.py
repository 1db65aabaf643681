"""`switchboard rotate-key`: re-encrypt every stored secret under a new key."""

from __future__ import annotations

import argparse

from cli._plumbing import Commands, emit, run


def register(commands: Commands) -> None:
    commands.add("rotate-key", _rotate_key, "re-encrypt every stored secret under a new key")


def _rotate_key(args: argparse.Namespace) -> None:
    report = run(args, lambda s: s.rotate_key())
    emit(args, report, f"re-encrypted {report['reencrypted']} secret(s) under key {report['key_id']}")
