"""Shared helpers: statistics, alternation, RSS sampling, environment facts, sample servers.

Every comparison runs both clients in one process against the same server, alternating run by run
(A B A B ... with the order flipped every other round), so a noisy neighbour slows both alike.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

import psutil

LOOPBACK = ("127.0.0.1", "localhost")


def stats(samples: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """median / min / max / n of a list of numbers (ms, s, counts)."""
    values = list(samples)
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Per-round ratios a[i] / b[i] (the rounds alternated, so each pair saw the same machine)."""
    return stats([x / y for x, y in zip(a, b, strict=False) if y], 3)


async def alternate(runs: int, variants: dict[str, Callable[[], Awaitable[float]]]) -> dict[str, list[float]]:
    """Run each variant `runs` times, interleaved; the order rotates every round."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            gc.collect()
            samples[name].append(await variants[name]())
    return samples


def target(name: str, measured: float | None, limit: float, *, op: str, unit: str = "") -> dict[str, Any]:
    """One target line: `measured op limit` (op is "<=", ">=", "<", "==")."""
    if measured is None:
        met = None
    elif op == "<=":
        met = measured <= limit
    elif op == ">=":
        met = measured >= limit
    elif op == "<":
        met = measured < limit
    elif op == "==":
        met = measured == limit
    else:  # pragma: no cover
        raise ValueError(op)
    return {"target": name, "measured": measured, "limit": limit, "op": op, "unit": unit, "met": met}


def environment() -> dict[str, Any]:
    import duckdb
    import httpx2
    import mcp

    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in load],
        "mcp": getattr(mcp, "__version__", None) or _dist_version("mcp"),
        "httpx2": httpx2.__version__,
        "duckdb": duckdb.__version__,
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


@dataclass
class RssSampler:
    """Peak resident set size of this process while the block runs (sampled every `interval` s)."""

    interval: float = 0.005
    start_bytes: int = 0
    peak_bytes: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[RssSampler]:
        process = psutil.Process()
        self.start_bytes = self.peak_bytes = process.memory_info().rss
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
                stop.wait(self.interval)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    @property
    def delta_mb(self) -> float:
        return round((self.peak_bytes - self.start_bytes) / 2**20, 1)


class Stopwatch:
    """Wall and CPU (this process) time of a block."""

    def __enter__(self) -> Self:
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.cpu0


def allow_loopback() -> None:
    """The network policy refuses loopback unless allowed; benchmarks only ever talk to 127.0.0.1."""
    from core.net import ALLOW_HOSTS_ENV

    os.environ[ALLOW_HOSTS_ENV] = ",".join(LOOPBACK)


def loopback_policy():
    from core.net import NetworkPolicy

    return NetworkPolicy.allowing(*LOOPBACK)


def mcp_requests(counters: dict[str, Any]) -> int:
    """HTTP requests a sample server saw (its /_control traffic is never counted)."""
    return int(counters.get("requests_total", 0))
