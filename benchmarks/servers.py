"""The servers the benchmarks run against: sample servers and the latency farm."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import httpx2

from sample_servers import launch
from sample_servers.launch import RunningServer


def start(kind: str, **options: Any) -> RunningServer:
    """A sample server (`sample_servers.launch.start`)."""
    return launch.start(kind, **options)


class LatencyFarm:
    """A running `benchmarks.latency_farm` process (see its docstring)."""

    def __init__(
        self,
        upstream: str,
        ports: int,
        latency_ms: float,
        *,
        passthrough: bool = False,
        startup_timeout: float = 60.0,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="latency-farm-"))
        info_file = self.workdir / "info.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(launch.REPO_ROOT), os.environ.get("PYTHONPATH")) if p
            ),
        }
        argv = [
            sys.executable,
            "-m",
            "benchmarks.latency_farm",
            "--upstream",
            upstream,
            "--ports",
            str(ports),
            "--latency-ms",
            str(latency_ms),
            "--info-file",
            str(info_file),
        ]
        if passthrough:
            argv.append("--passthrough")
        self.log = self.workdir / "farm.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + startup_timeout
        while not info_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"latency farm did not start: {self.log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)
        info = json.loads(info_file.read_text())
        self.urls: list[str] = info["urls"]
        self.ports: list[int] = info["ports"]
        self._http = httpx2.Client(trust_env=False, timeout=10.0)

    def _control_url(self, name: str) -> str:
        return self.urls[0].rsplit("/", 1)[0] + f"/_farm/{name}"

    def stats(self) -> dict[str, Any]:
        return self._http.get(self._control_url("stats")).json()

    def reset(self) -> dict[str, Any]:
        return self._http.post(self._control_url("reset")).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if hasattr(self, "_http"):
            self._http.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
