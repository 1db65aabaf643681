"""Dashboard: time until each page shows its content, with 10,000 tools in the store.

`switchboard serve` (python -m cli serve) runs in a subprocess on an ephemeral port over a
prepared store (10 connectors x 1000 tools, the store benchmark's generator, and one agent).
Headless Chromium (Debian's /usr/bin/chromium through Playwright) opens each page in a fresh browser
context per run. For /tools the time is from `page.goto` until the first table row shows a tool name
and the count line says "10,000 tools." (the first store page arrived and Tabulator drew it); the
first visit after the server starts is reported separately (`first_visit_ms`: Panel/Bokeh warm-up on
the server). Every other page's first meaningful paint (`pages_ms`) is the time until what the page
is for is drawn from the store: the overview's tool count, the connectors' and agents' first rows,
the agent's shared connectors, the empty audit and health tables, the playground's and review's
pickers (`PAGES`).
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from benchmarks.common import stats
from sample_servers.chromium import CHROMIUM, launch

STARTUP_SECONDS = 90
AGENT = "bench-agent"

# page -> (path, a locator for what the page is for, and the text it must hold once loaded ({total}:
# the number of tools, as the page writes it)).
PAGES: dict[str, tuple[str, str, str | None]] = {
    "overview": ("/", "[data-count=tools] b", "{total:,}"),
    "connectors": ("/connectors", ".tabulator-row [tabulator-field=name]", "server-"),
    "agents": ("/agents", ".tabulator-row [tabulator-field=name]", AGENT),
    "agent": (f"/agent?name={AGENT}", ".tabulator-row [tabulator-field=connector]", "server-"),
    "tools": ("/tools", ".tabulator-row [tabulator-field=name]", None),
    "review": ("/review?connector=server-00", "#main h2", None),
    "playground": ("/playground", "#main h2", None),
    "audit": ("/audit", ".tabulator", None),
    "health": ("/health", ".tabulator", None),
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _prepare(path: Path, connectors: int, tools_per_connector: int) -> int:
    from core.store.bench import _tools
    from core.store.db import Store

    rng = random.Random(5)
    store = Store.open(path)
    with store.session():
        for c in range(connectors):
            connector = store.connectors.create(f"server-{c:02d}", f"https://s{c}.example/mcp", "bearer")
            store.tools.record_syncs([(connector.id, "", _tools(rng, c, tools_per_connector))])
        store.agents.create(AGENT)
    return store.tools.page(limit=1).total


def blocked_reason() -> str | None:
    """Why the dashboard benchmark cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    try:
        import dashboard.serve  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means the dashboard is not usable yet
        return f"the dashboard does not import: {type(exc).__name__}: {exc}"
    return None


def dashboard(runs: int = 5, connectors: int = 10, tools_per_connector: int = 1000) -> dict[str, Any]:
    reason = blocked_reason()
    if reason is not None:
        return {"blocked": reason}
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        work = Path(tmp)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "SWITCHBOARD_STORE": str(work / "store.duckdb"),
            "SWITCHBOARD_KEY_FILE": str(work / "store.key"),
            "SWITCHBOARD_PUBLIC_URL": url,
            "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
        }
        saved = {k: os.environ.get(k) for k in ("SWITCHBOARD_STORE", "SWITCHBOARD_KEY_FILE")}
        os.environ.update({k: env[k] for k in saved})
        try:
            started = time.perf_counter()
            total = _prepare(work / "store.duckdb", connectors, tools_per_connector)
            prepare_s = time.perf_counter() - started
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        log_path = work / "dashboard.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                # No sign-in (loopback only): the benchmark times the page, not a sign-in per visit.
                [
                    sys.executable,
                    "-m",
                    "cli",
                    "serve",
                    "--port",
                    str(port),
                    "--address",
                    "127.0.0.1",
                    "--auth",
                    "none",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=work,
                start_new_session=True,
            )
        try:
            _wait_http(f"{url}/tools", server, log_path)
            count_text = re.compile(rf"\b{total:,} tools\.")
            with sync_playwright() as playwright:
                browser = launch(playwright)
                try:
                    first = _visit(browser, f"{url}/tools", count_text)
                    times = [_visit(browser, f"{url}/tools", count_text) for _ in range(runs)]
                    pages = {name: [_paint(browser, url, name, total) for _ in range(runs)] for name in PAGES}
                finally:
                    browser.close()
        except Exception as exc:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"dashboard benchmark failed: {exc}\n--- dashboard log ---\n{tail}") from exc
        finally:
            _stop(server)
    return {
        "unit": "ms",
        "runs": runs,
        "tools": total,
        "prepare_store_s": round(prepare_s, 1),
        "first_visit_ms": round(first["first_row_ms"], 1),
        "first_row_ms": stats([t["first_row_ms"] for t in times], 1),
        "dom_content_loaded_ms": stats([t["dom_content_loaded_ms"] for t in times], 1),
        "rows_on_first_page": times[-1]["rows"],
        "pages_ms": {name: stats(samples, 1) for name, samples in pages.items()},
    }


def _paint(browser: Any, url: str, name: str, total: int) -> float:
    """ms from `page.goto` until page `name` shows what it is for (see `PAGES`)."""
    path, selector, text = PAGES[name]
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(f"{url}{path}", wait_until="commit")
        target = page.locator(selector).first
        if text is not None:
            target = page.locator(selector, has_text=text.format(total=total)).first
        target.wait_for(state="visible", timeout=60_000)
        return (time.perf_counter() - started) * 1000
    finally:
        context.close()


def _visit(browser: Any, url: str, count_text: re.Pattern[str]) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        name_cell = page.locator(".tabulator-row [tabulator-field=name]").first
        name_cell.wait_for(state="visible", timeout=60_000)
        page.get_by_text(count_text).wait_for(state="visible", timeout=60_000)
        first_row = (time.perf_counter() - started) * 1000
        if not name_cell.inner_text().strip():
            raise AssertionError("the first row has no tool name")
        dcl = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return n ? n.domContentLoadedEventEnd : null; }"
        )
        rows = page.locator(".tabulator-row").count()
        return {"first_row_ms": first_row, "dom_content_loaded_ms": float(dcl or 0.0), "rows": rows}
    finally:
        context.close()


def _wait_http(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx2.Client(trust_env=False, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"switchboard serve exited with {server.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"switchboard serve did not answer {url} within {STARTUP_SECONDS}s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    import signal

    if server.poll() is None:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait()
