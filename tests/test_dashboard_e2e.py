"""The dashboard end to end: `switchboard serve` in a subprocess, headless Chromium, real sample servers.

One dashboard serves the whole module (a temporary store, key file and allow-list); each test uses
its own connector and agent names. Screenshots of every page go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Page, expect

from core.services import Switchboard

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
STARTUP_SECONDS = 60


@dataclass
class Dashboard:
    url: str
    store: Path
    log: Path

    def seed(self, work) -> None:
        """Run `await work(services)` against the dashboard's store from this test process."""

        async def run():
            service = Switchboard.open(str(self.store))
            try:
                await work(service)
            finally:
                await service.aclose()

        # Playwright's sync API owns this thread's event loop: run ours on another thread.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, run()).result()

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[Dashboard]:
    workdir = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "SWITCHBOARD_STORE": str(workdir / "store.duckdb"),
        "SWITCHBOARD_KEY_FILE": str(workdir / "store.key"),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
        "SWITCHBOARD_PUBLIC_URL": url,
    }
    log = workdir / "dashboard.log"
    with pytest.MonkeyPatch.context() as patch, open(log, "wb") as log_file:
        for key, value in env.items():
            patch.setenv(key, value)  # the tests' own services (seed) share the store and key
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port), "--address", "127.0.0.1"],
            cwd=REPO,
            env=os.environ.copy(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        board = Dashboard(url=url, store=workdir / "store.duckdb", log=log)
        try:
            _wait_until_serving(board, process)
            yield board
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert_no_dashboard_errors(log.read_text(errors="replace"))


def assert_no_dashboard_errors(log_text: str) -> None:
    """Nothing of ours failed. (Tornado logs a traceback when a page is left while a websocket
    message is in flight, as the OAuth redirect does; that is not ours.)"""
    ours = [
        f'File "{REPO / "dashboard"}',
        "dashboard action failed",
        "unhandled dashboard callback error",
        "completing an OAuth callback failed",
    ]
    assert not [marker for marker in ours if marker in log_text], log_text[-5000:]


def _wait_until_serving(board: Dashboard, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"switchboard serve exited with {process.returncode}:\n{board.log_tail()}")
        try:
            if httpx2.get(f"{board.url}/connectors", timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"switchboard serve did not answer within {STARTUP_SECONDS} s:\n{board.log_tail()}")


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def row(page: Page, name: str):
    return page.locator(
        ".tabulator-row", has=page.locator("[tabulator-field=name]", has_text=re.compile(f"^{name}$"))
    )


def add_connector(
    page: Page, name: str, url: str, auth_label: str = "OAuth 2.1 (browser sign-in)", per_agent: bool = False
) -> None:
    """Fill the add-connector form of a freshly loaded connectors page (not saved yet)."""
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Server URL").fill(url)
    page.get_by_label("Auth type").select_option(label=auth_label)
    if per_agent:
        page.get_by_text("Each agent its own").click()


def expect_no_traceback(page: Page) -> None:
    expect(page.locator("body")).not_to_contain_text("Traceback")


def test_oauth_connector_connects_through_the_authorization_server(dashboard, page, sdk_oauth_server):
    page.goto(f"{dashboard.url}/connectors")
    add_connector(page, "oauth-shared", sdk_oauth_server.url)
    page.get_by_role("button", name="Save").click()
    expect(row(page, "oauth-shared")).to_contain_text("never synced")

    row(page, "oauth-shared").locator(".sb-action", has_text="Connect").click()

    page.wait_for_url(re.compile(r"/connectors\?flash="))
    expect(row(page, "oauth-shared")).to_contain_text("connected")
    expect(row(page, "oauth-shared").locator("[tabulator-field=tools]")).to_have_text(
        str(len(sdk_oauth_server.tools))
    )
    row(page, "oauth-shared").locator("[tabulator-field=name]").click()
    discovered = page.get_by_role("row", name=re.compile(r"^authorization server \S+127\.0\.0\.1"))
    expect(discovered).to_be_visible()  # what discovery found
    screenshot(page, "connectors")

    page.goto(f"{dashboard.url}/tools")
    page.get_by_label("Server").select_option("oauth-shared")
    expect(page.get_by_text(f"{len(sdk_oauth_server.tools)} tools.")).to_be_visible()
    page.locator(".tabulator-row", has_text="greet").first.click()
    expect(page.get_by_text("Schema of greet")).to_be_visible()
    screenshot(page, "tools")
    page.locator(".tabulator-col[tabulator-field=read_only] .tabulator-header-filter").click()
    expect(page.get_by_text("1 tool.")).to_be_visible()  # the store's read-only filter
    expect(page.locator(".tabulator-row")).to_have_count(1)
    page.get_by_role("link", name="Try it in the playground").click()
    expect(page.get_by_label("Tool")).to_have_value("greet")


def test_per_agent_connect_started_on_the_agent_page_returns_to_it(dashboard, page, sdk_oauth_server):
    page.goto(f"{dashboard.url}/agents")
    page.get_by_label("Agent name").fill("carol")
    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("link", name="Open carol")).to_be_visible()
    screenshot(page, "agents")
    page.goto(f"{dashboard.url}/connectors")
    add_connector(page, "oauth-mine", sdk_oauth_server.url, per_agent=True)
    page.get_by_role("button", name="Save").click()
    expect(row(page, "oauth-mine")).to_contain_text("per_agent")

    page.goto(f"{dashboard.url}/agents")
    page.get_by_role("link", name="Open carol").click()
    page.get_by_role("button", name="Connect oauth-mine").click()

    page.wait_for_url(re.compile(r"/agent\?name=carol&flash="))
    expect(page.get_by_role("button", name="Disconnect oauth-mine")).to_be_visible()
    expect(page.locator(".sb-badge", has_text="connected").first).to_be_visible()
    screenshot(page, "agent")


def test_bearer_connector_with_a_shared_key(dashboard, page, bearer_server):
    key = bearer_server.keys["alice"]
    page.goto(f"{dashboard.url}/connectors")
    add_connector(page, "bearer-shared", bearer_server.url, auth_label="Bearer token")
    page.get_by_label("Shared token / API key").fill(key)
    page.get_by_role("button", name="Save").click()

    expect(row(page, "bearer-shared")).to_contain_text("connected")
    expect(page.get_by_label("Shared token / API key")).to_have_value("")
    assert key not in page.content()


def test_playground_calls_a_tool_through_its_generated_form(dashboard, page, plain_server):
    async def connect_plain(services):
        await services.add_connector("plain-e2e", plain_server.url, "none")
        await services.connect("plain-e2e")

    dashboard.seed(connect_plain)
    page.goto(f"{dashboard.url}/playground?connector=plain-e2e&tool=greet")
    page.get_by_label("name *").fill("Ada")
    page.get_by_role("button", name="Call").click()

    expect(page.get_by_text("Hello, Ada!", exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"Answered in [\d.]+ ms"))).to_be_visible()
    screenshot(page, "playground")

    page.get_by_label("Tool").select_option("echo")
    markup = "<img src=x onerror=\"document.title='injected'\">"
    page.get_by_label("message *").fill(markup)
    page.get_by_role("button", name="Call").click()
    expect(page.get_by_text(markup, exact=True)).to_be_visible()  # tool output is text, never markup
    assert page.title() != "injected"

    page.get_by_label("Tool").select_option("always_fails")
    page.get_by_role("button", name="Call").click()
    expect(page.get_by_text("The tool reported an error")).to_be_visible()

    page.goto(f"{dashboard.url}/audit")
    expect(page.locator(".tabulator-row", has_text="greet").first).to_be_visible()
    screenshot(page, "audit")
    page.goto(f"{dashboard.url}/health")
    expect(page.get_by_role("heading", name="Credential health")).to_be_visible()
    screenshot(page, "health")


def test_a_bad_url_shows_a_readable_error(dashboard, page):
    page.goto(f"{dashboard.url}/connectors")
    add_connector(page, "bad-url", "not a url", auth_label="None (public server)")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("The URL must start with https:// and name a host.").first).to_be_visible()

    page.get_by_label("Server URL").fill("http://127.0.0.1:9/mcp")  # nothing listens on the discard port
    page.get_by_role("button", name="Save").click()
    expect(row(page, "bad-url")).to_be_visible()
    row(page, "bad-url").locator(".sb-action", has_text="Connect").click()

    expect(page.locator(".notyf__toast--error").last).to_be_visible()
    expect_no_traceback(page)
    page.goto(f"{dashboard.url}/connectors")  # the server is still up
    expect(row(page, "bad-url")).to_be_visible()


def test_a_forged_callback_returns_with_a_readable_error_and_reflects_nothing(dashboard, page):
    injected = "<img src=x onerror=alert(1)>"
    callback = f"{dashboard.url}/oauth/callback"
    response = httpx2.get(
        callback,
        params={"state": "forged", "error": "access_denied", "error_description": injected},
        trust_env=False,
    )
    assert response.status_code == 303
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith("/") and "onerror" not in location and "access_denied" not in location

    page.goto(f"{callback}?state=forged&error=access_denied&error_description={injected}")

    page.wait_for_url(re.compile(r"flash="))
    expect(page.locator(".sb-alert-bad")).to_be_visible()
    assert "onerror" not in page.content()
    expect_no_traceback(page)


def test_a_long_tool_call_in_one_session_does_not_freeze_another(dashboard, browser, page, plain_server):
    async def connect_plain(services):
        await services.add_connector("plain-slow", plain_server.url, "none")
        await services.connect("plain-slow")

    dashboard.seed(connect_plain)
    page.goto(f"{dashboard.url}/playground?connector=plain-slow&tool=sleep")
    page.get_by_label("seconds").fill("30")
    page.get_by_role("button", name="Call").click()
    expect(page.get_by_role("button", name="Call")).to_be_disabled()  # the call is under way

    other = browser.new_context().new_page()
    other.goto(f"{dashboard.url}/connectors")
    expect(row(other, "plain-slow")).to_contain_text("connected")

    expect(page.get_by_role("button", name="Call")).to_be_disabled()  # still running meanwhile
    other.context.close()


def test_server_written_markup_never_runs_in_tables_tooltips_or_forms(dashboard, page, sample_server_factory):
    server = sample_server_factory("plain")
    markup = "<img src=x onerror=\"document.title='injected'\">"
    server.set_tool_description("greet", f"Greets. {markup}")

    async def connect_hostile(services):
        await services.add_connector("hostile-e2e", server.url, "none")
        await services.connect("hostile-e2e")

    dashboard.seed(connect_hostile)
    page.goto(f"{dashboard.url}/tools")
    cell = page.locator("[tabulator-field=description]", has_text="Greets.").first
    expect(cell).to_contain_text(markup)  # shown as text
    cell.hover()
    expect(page.locator(".tabulator-tooltip")).to_contain_text(markup)
    assert page.title() != "injected"
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    page.goto(f"{dashboard.url}/playground?connector=hostile-e2e&tool=greet")
    expect(page.get_by_text(markup, exact=False).first).to_be_visible()
    assert page.title() != "injected"
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
