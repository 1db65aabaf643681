"""`switchboard export [--output FILE]` and `switchboard import FILE [--dry-run]`: configuration as
code — connectors, agents, credential and approval modes, gateway policies as YAML, without secrets.

Import applies only the differences and deletes nothing; `--dry-run` prints them without changing
anything. An invalid file exits 2 with every problem and its line, and changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cli._plumbing import Commands, emit, run
from core.errors import ConfigurationError


def register(commands: Commands) -> None:
    export = commands.add("export", _export, "write the configuration as YAML (no secrets)")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    imported = commands.add("import", _import, "apply a configuration file (only what differs)")
    imported.add_argument("file", help="the YAML file, or - for stdin")
    imported.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")


def _export(args: argparse.Namespace) -> None:
    text = run(args, lambda s: s.export_config())
    if not args.output:
        sys.stdout.write(text)
        return
    target = Path(args.output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)  # a reader never sees half a file
    except OSError as exc:
        raise ConfigurationError(f"cannot write {target}: {exc.strerror}") from None
    print(f"wrote {target}", file=sys.stderr)


def _import(args: argparse.Namespace) -> None:
    source = "stdin" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    report = run(args, lambda s: s.import_config(text, source=source, dry_run=args.dry_run))
    emit(args, report.as_dict(), report.describe())
