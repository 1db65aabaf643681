"""Two dashboard replicas on one PostgreSQL store (#14.5): any replica serves any request.

Two `switchboard serve` processes share a database, a key and a public URL, as replicas behind a
load balancer do. The "load balancer" here is the browser's routing: the public URL is replica B's
address, so the authorization server sends the OAuth callback to B, while the pages are opened on A.
A connect started on A (its pending authorization written to the store) is completed by B, and the
flash message B puts is shown by A.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.test_dashboard_e2e import (
    REPO,
    Dashboard,
    _wait_until_serving,
    add_connector,
    assert_no_dashboard_errors,
    free_port,
    row,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def replicas(tmp_path, postgres_url) -> Iterator[tuple[Dashboard, Dashboard]]:
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    env = {
        "SWITCHBOARD_STORE": postgres_url,
        "SWITCHBOARD_KEY_FILE": str(tmp_path / "store.key"),
        "SWITCHBOARD_ALLOW_HOSTS": "127.0.0.1,localhost",
        "SWITCHBOARD_PUBLIC_URL": urls[1],  # the load balancer's address; here it reaches replica B
    }
    processes: list[subprocess.Popen] = []
    boards: list[Dashboard] = []
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)  # the test's own services (seed) share the store and key
        try:
            for index, url in enumerate(urls):
                log = tmp_path / f"replica-{'ab'[index]}.log"
                with open(log, "wb") as log_file:
                    processes.append(
                        subprocess.Popen(
                            [*_serve(url)],
                            cwd=REPO,
                            env=os.environ.copy(),
                            stdout=log_file,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
                boards.append(Dashboard(url=url, store=postgres_url, log=log))
            for board, process in zip(boards, processes, strict=True):
                _wait_until_serving(board, process, demo=False)  # `serve`, not the demo
            yield boards[0], boards[1]
        finally:
            for process in processes:
                os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    for board in boards:
        assert_no_dashboard_errors(board.log.read_text(errors="replace"))


def _serve(url: str) -> list[str]:
    port = url.rsplit(":", 1)[1]
    return [sys.executable, "-m", "cli", "serve", "--port", port, "--address", "127.0.0.1"]


def test_a_connect_started_on_one_replica_is_finished_and_announced_by_the_other(
    replicas, page: Page, sdk_oauth_server
):
    a, b = replicas
    callbacks: list[tuple[str, int]] = []

    def balance(route) -> None:
        # The browser leaves A for the authorization server, which approves at once and redirects to
        # the public callback, B's; B's answer sends the browser back to a page, which the "load
        # balancer" serves from A. (Playwright routes only the first request of a redirect chain, so
        # the chain is followed here, one hop at a time, in the browser's own request context.)
        approved = route.fetch(max_redirects=0)
        callback = approved.headers["location"]
        assert callback.startswith(f"{b.url}/oauth/callback?")
        finished = page.request.get(callback, max_redirects=0)
        callbacks.append((callback.split("?")[0], finished.status))
        route.fulfill(status=303, headers={"Location": a.url + finished.headers["location"]})

    page.route(re.compile(re.escape(sdk_oauth_server.issuer.rstrip("/")) + r"/authorize\?"), balance)

    page.goto(f"{a.url}/connectors")
    add_connector(page, "oauth-replicated", sdk_oauth_server.url)
    page.get_by_role("button", name="Save").click()
    expect(row(page, "oauth-replicated")).to_contain_text("never synced")
    row(page, "oauth-replicated").locator(".sb-action", has_text="Connect").click()  # started on A

    page.wait_for_url(re.compile(re.escape(a.url) + r"/connectors\?flash="))
    assert callbacks == [(f"{b.url}/oauth/callback", 303)]  # the callback reached B, which finished it
    expect(page.locator(".sb-alert-ok")).to_have_text(
        f"oauth-replicated connected: {len(sdk_oauth_server.tools)} tools"
    )  # B's message, on A
    expect(row(page, "oauth-replicated")).to_contain_text("connected")
    page.reload()  # a flash message is shown once
    expect(row(page, "oauth-replicated")).to_contain_text("connected")
    expect(page.locator(".sb-alert")).to_have_count(0)
