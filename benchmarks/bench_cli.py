"""CLI start-up: how long a whole `switchboard` process takes, next to `python -c pass`.

Ops scripts call the CLI in loops, so the cost that matters is the whole process: interpreter start,
imports, parsing, opening the store, the query, printing. Each command runs as its own process
(the console script next to this interpreter, else `python -m cli`) over a prepared store
(`connectors` x `tools_per_connector` tools), with stdout discarded. Variants alternate run by run
(A B C, B C A, ...) so a busy neighbour slows them alike; each reports the median wall time, the
process's CPU time and its peak RSS (`wait4`), and the ratio of its median wall time to
`python -c pass`.

Bytecode is compiled once, before the timed runs, into a private cache (`PYTHONPYCACHEPREFIX`), so
the numbers are those of an installed package (pip compiles at install time) even where
`PYTHONDONTWRITEBYTECODE` is set for development.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import ratio, stats, target

TARGET_MS = 250.0  # issue 12: `connector list` and `tools` start like a CLI
COMMANDS: dict[str, tuple[str, ...]] = {
    "help": ("--help",),
    "connector list": ("connector", "list"),
    "tools": ("tools",),
}


def cli_startup(runs: int = 15, connectors: int = 10, tools_per_connector: int = 20) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env.update(
            {
                "SWITCHBOARD_STORE": str(work / "store.duckdb"),
                "SWITCHBOARD_KEY_FILE": str(work / "store.key"),
                "PYTHONPYCACHEPREFIX": str(work / "pycache"),
            }
        )
        env.pop("SWITCHBOARD_KEY", None)
        tools = _prepare(env, connectors, tools_per_connector)
        switchboard = _switchboard_argv()
        variants = {"python -c pass": [sys.executable, "-c", "pass"]}
        variants.update({f"switchboard {name}": [*switchboard, *args] for name, args in COMMANDS.items()})
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
        names = list(variants)
        launcher = _Launcher(work)
        try:
            for argv in variants.values():  # compile the bytecode; not timed
                launcher.run(argv, env)
            for round_ in range(runs):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    samples[name].append(launcher.run(variants[name], env))
        finally:
            launcher.close()
    baseline = stats([wall for wall, _, _ in samples["python -c pass"]], 1)["median"]
    commands = {}
    for name, rows in samples.items():
        wall = stats([wall for wall, _, _ in rows], 1)
        commands[name] = {
            "wall_ms": wall,
            "cpu_ms": stats([cpu for _, cpu, _ in rows], 1),
            "rss_peak_mb": stats([rss for _, _, rss in rows], 1),
            "ratio_to_python": ratio(wall["median"], baseline),
        }
    return {
        "unit": "ms",
        "runs": runs,
        "connectors": connectors,
        "tools": tools,
        "command": " ".join(Path(part).name for part in switchboard),
        "commands": commands,
    }


def _prepare(env: dict[str, str], connectors: int, tools_per_connector: int) -> int:
    from core.config import load_settings
    from core.store.db import Store

    store = Store.open(settings=load_settings(env))
    with store.session():
        for c in range(connectors):
            name = f"server-{c:02d}"
            connector = store.connectors.create(name, f"https://s{c}.example/mcp", "bearer")
            tools = [
                {
                    "name": f"tool_{c}_{i}",
                    "description": f"tool {i} of server {c}, for the CLI start-up benchmark",
                    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
                }
                for i in range(tools_per_connector)
            ]
            store.tools.record_syncs([(connector.id, "", tools)])
    return store.tools.page(limit=1).total


def _switchboard_argv() -> list[str]:
    script = Path(sys.executable).with_name("switchboard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


class _Launcher:
    """A small process that starts the measured ones and times them with `wait4`.

    Linux carries a process's peak RSS across `exec` from the process that spawned it, so a child
    of this (large) benchmark process would report at least this process's RSS. The launcher is a
    bare interpreter: its children's peak RSS is their own.
    """

    _CODE = (
        "import json, os, sys, time\n"
        "for line in sys.stdin:\n"
        "    argv, env, errors = json.loads(line)\n"
        "    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),\n"
        "               (os.POSIX_SPAWN_OPEN, 2, errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]\n"
        "    started = time.perf_counter()\n"
        "    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)\n"
        "    _, status, usage = os.wait4(pid, 0)\n"
        "    wall = time.perf_counter() - started\n"
        "    cpu = usage.ru_utime + usage.ru_stime\n"
        "    print(json.dumps([os.waitstatus_to_exitcode(status), wall, cpu, usage.ru_maxrss]), flush=True)\n"
    )

    def __init__(self, work: Path) -> None:
        self._errors = work / "stderr.txt"
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", self._CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
        """One process to completion: (wall ms, CPU ms, peak RSS MB). A failure raises with its stderr."""
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(json.dumps([argv, env, str(self._errors)]) + "\n")
        self._process.stdin.flush()
        code, wall, cpu, rss_kib = json.loads(self._process.stdout.readline())
        if code != 0:
            tail = self._errors.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv)} exited {code}: {tail}")
        return wall * 1000, cpu * 1000, rss_kib / 1024

    def close(self) -> None:
        assert self._process.stdin
        self._process.stdin.close()
        self._process.wait(timeout=10)


def targets(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not result:
        return []
    return [
        target(
            f"CLI start-up: switchboard {name} (whole process, median wall)",
            result["commands"][f"switchboard {name}"]["wall_ms"]["median"],
            TARGET_MS,
            op="<=",
            unit="ms",
        )
        for name in ("connector list", "tools")
    ]
