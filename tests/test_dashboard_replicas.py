"""Two dashboard replicas on one PostgreSQL store (#14.5): any replica serves any request.

Two `switchboard serve` processes share a database, a key and a public URL, as replicas behind a
load balancer do. The "load balancer" here is the browser's routing: the public URL is replica B's
address, so the authorization server sends the OAuth callback to B, while the pages are opened on A.
A connect started on A (its pending authorization written to the store) is completed by B, and the
flash message B puts is shown by A.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.fixtures.dashboard import Dashboard, free_port, running_dashboard
from tests.test_dashboard_e2e import add_connector, row

pytestmark = pytest.mark.browser


@pytest.fixture
def replicas(tmp_path, postgres_url) -> Iterator[tuple[Dashboard, Dashboard]]:
    ports = [free_port(), free_port()]
    env = {
        "SWITCHBOARD_STORE": postgres_url,
        "SWITCHBOARD_KEY_FILE": str(tmp_path / "store.key"),  # and so the same dashboard secret
        "SWITCHBOARD_PUBLIC_URL": f"http://127.0.0.1:{ports[1]}",  # the load balancer's; it reaches B
        "SWITCHBOARD_LOGIN_TOKEN": secrets.token_urlsafe(32),  # replicas share it, like the key
        # Behind a load balancer every page comes from the public origin; here pages come from A.
        "BOKEH_ALLOW_WS_ORIGIN": ",".join(f"127.0.0.1:{port}" for port in ports),
    }
    for replica in ("a", "b"):
        (tmp_path / replica).mkdir()
    with (
        running_dashboard(tmp_path / "a", ports[0], env=env) as a,
        running_dashboard(tmp_path / "b", ports[1], env=env) as b,
    ):
        a.signin_url = f"{a.url}/login?token={env['SWITCHBOARD_LOGIN_TOKEN']}"  # it printed B's
        yield a, b


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

    page.goto(a.signin_url)  # the session cookie is the host's: both replicas accept it
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
