"""The dashboard end to end: `switchboard demo` in a subprocess, headless Chromium, real sample servers.

One demo serves the whole module (its sample servers, connectors and agents, on a temporary store,
key file and allow-list); each test adds its own connector and agent names. Screenshots of every
page at 1440 px go to test-artifacts/ (not committed); every page is checked with axe-core.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.dashboard import ARTIFACTS, REPO, Dashboard, free_port, running_dashboard

pytestmark = pytest.mark.browser

WIDE, NARROW = 1440, 1280  # the widths the tables must read well at
AXE_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[Dashboard]:
    with running_dashboard(tmp_path_factory.mktemp("dashboard"), free_port(), command="demo") as board:
        yield board


def signed_in_page(browser: Browser, dashboard: Dashboard) -> Page:
    """A page in a new browser context that opened the printed sign-in URL (token mode)."""
    context = browser.new_context(viewport={"width": WIDE, "height": 1000})
    page = context.new_page()
    page.goto(dashboard.signin_url)
    page.wait_for_url(f"{dashboard.url}/")  # the overview
    return page


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    page = signed_in_page(browser, dashboard)
    context = page.context
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    yield page
    context.close()
    assert page_errors == []


def screenshot(page: Page, name: str) -> None:
    """The whole page: the template scrolls inside #main, so the window grows to its height first."""
    ARTIFACTS.mkdir(exist_ok=True)
    viewport = page.viewport_size
    height = page.evaluate("document.querySelector('#main')?.scrollHeight ?? 0")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], height + 100)})
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(viewport)


def axe_violations(page: Page) -> list[str]:
    """Serious and critical WCAG 2 A/AA violations axe-core finds on the page (shadow roots included)."""
    modules = Path(os.environ.get("SWITCHBOARD_NODE_MODULES", REPO / ".cache" / "node" / "node_modules"))
    page.add_script_tag(path=str(modules / "axe-core" / "axe.min.js"))
    # A toast sliding in is half transparent: axe would judge its contrast mid-animation. (Endless
    # animations, e.g. a spinner, never finish: they are not waited for.)
    page.evaluate(
        """async () => { await Promise.all(document.getAnimations()
             .filter(a => a.effect?.getComputedTiming().endTime !== Infinity).map(a => a.finished)); }"""
    )
    found = page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: 'tag',
             values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations
           .map(v => ({id: v.id, impact: v.impact, targets: v.nodes.map(n => JSON.stringify(n.target))}))"""
    )
    return [f"{v['id']} ({v['impact']}): {v['targets'][:3]}" for v in found if v["impact"] in AXE_IMPACTS]


# Table headers and cells Tabulator would cut ("t…"): any whose text is wider than its box.
CUT_TEXT = """() => {
  const cut = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.matches('.tabulator-col-title, .tabulator-cell') && el.scrollWidth > el.clientWidth + 1
          && el.textContent.trim()) cut.push(el.textContent.trim().slice(0, 40));
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return cut;
}"""


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


def test_overview_counts_match_the_store_its_charts_render_and_it_refreshes_itself(dashboard, page):
    expected = dashboard.seed(lambda services: services.overview()).counts()
    page.goto(f"{dashboard.url}/?refresh=2")

    for key, value in expected.items():
        expect(page.locator(f"[data-count={key}] b")).to_have_text(f"{value:,}")
    assert expected["calls_24h"] > 0 and expected["tools"] > 0  # the demo's calls and synced tools
    expect(page.get_by_text(re.compile(r"^\d+ calls in the last 24 hours"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^\d+ tools on \d+ connector"))).to_be_visible()
    assert page.locator(".bk-Figure canvas").count() >= 2  # the activity and tools charts drew
    expect(page.get_by_role("button", name="Connect demo-oauth")).to_be_visible()  # needs attention
    screenshot(page, "overview")

    def one_more_call(services):
        return services.call_tool("demo-bearer", "whoami", {}, agent="alice")

    dashboard.seed(one_more_call)
    # No reload: the page's periodic refresh brings the new call in.
    expect(page.locator("[data-count=calls_24h] b")).to_have_text(f"{expected['calls_24h'] + 1:,}")


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


def test_offboarding_an_agent_revokes_at_the_authorization_server_and_its_calls_then_fail(
    dashboard, page, sdk_oauth_server
):
    from core.errors import AuthRequired

    dashboard.seed(lambda services: services.add_agent("dora"))
    page.goto(f"{dashboard.url}/connectors")
    add_connector(page, "oauth-dora", sdk_oauth_server.url, per_agent=True)
    page.get_by_role("button", name="Save").click()
    expect(row(page, "oauth-dora")).to_contain_text("per_agent")
    page.goto(f"{dashboard.url}/agent?name=dora")
    page.get_by_role("button", name="Connect oauth-dora").click()
    page.wait_for_url(re.compile(r"/agent\?name=dora&flash="))
    expect(page.get_by_role("button", name="Disconnect oauth-dora")).to_be_visible()
    agent_page_loaded(page)
    assert sdk_oauth_server.counters()["revocations"] == 0

    page.get_by_role("button", name="Offboard dora").click()
    page.get_by_role("button", name="Yes, revoke everything of dora").click()

    report = page.locator(".tabulator-row", has_text="oauth-dora")
    expect(report).to_contain_text("revoked at server")
    expect(report).to_contain_text(sdk_oauth_server.issuer)
    expect(page.get_by_role("button", name="Connect oauth-dora")).to_be_visible()  # nothing left
    assert sdk_oauth_server.counters()["revocations"] >= 1
    screenshot(page, "agent-offboarded")
    assert axe_violations(page) == []

    def call_as_dora(services):
        return services.call_tool("oauth-dora", "whoami", {}, agent="dora")

    with pytest.raises(AuthRequired):
        dashboard.seed(call_as_dora)


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
    forged = "f" * 43  # of a state's form, but never issued
    response = httpx2.get(
        callback,
        params={"state": forged, "error": "access_denied", "error_description": injected},
        trust_env=False,
    )
    assert response.status_code == 303
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith("/") and "onerror" not in location and "access_denied" not in location

    page.goto(f"{callback}?state={forged}&error=access_denied&error_description={injected}")

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
    page.get_by_label("seconds", exact=True).fill("30")  # not its step buttons ("Increase seconds")
    page.get_by_role("button", name="Call").click()
    expect(page.get_by_role("button", name="Call")).to_be_disabled()  # the call is under way

    other = signed_in_page(browser, dashboard)
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
    page.get_by_label("Server").select_option("hostile-e2e")  # the demo's tools come first otherwise
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


def test_drift_review_shows_a_real_schema_change_and_approving_releases_the_tool(dashboard, page):
    dashboard.control(dashboard.bearer_url, "tool_definition", tool="echo", changed=True)
    try:
        page.goto(f"{dashboard.url}/connectors")
        page.get_by_role("button", name="Sync all").click()
        # Every sync of the run is listed from the start and filled in as it finishes.
        for agent in ("alice", "bob"):
            progress = page.locator(".tabulator-row", has_text=re.compile(f"demo-bearer\\s*{agent}"))
            expect(progress.locator("[tabulator-field=state]")).to_have_text("synced")
        expect(page.get_by_text(re.compile(r"^Syncs: (\d+) of \1 done"))).to_be_visible()
        screenshot(page, "connectors-sync-all")

        page.goto(f"{dashboard.url}/")
        page.get_by_role("link", name="Review the tools of demo-bearer for alice").click()
        page.wait_for_url(re.compile(r"/review\?connector=demo-bearer&agent=alice"))
        expect(page.get_by_label("Tool list")).to_contain_text("demo-bearer (alice)")
        schema = page.locator("table.sb-diff", has=page.locator("caption", has_text="Input schema"))
        new_parameter = schema.locator("ins", has_text=re.compile(r'^\+\s+"repeat": \{$'))
        expect(new_parameter).to_be_visible()  # on the right: what the server serves now
        expect(schema.locator("caption")).to_contain_text("changed")
        expect(page.locator("table.sb-diff", has_text="Echo the message back unchanged.")).to_be_visible()
        screenshot(page, "review")

        page.get_by_role("button", name="Approve echo").click()
        expect(page.get_by_text("Every tool of demo-bearer is approved.")).to_be_visible()

        async def states(services):
            held = []
            for agent in ("alice", "bob"):
                reviews = await services.access().reviews("demo-bearer", agent)
                held.append({r.name: r.state for r in reviews if r.state != "approved"})
            return held

        assert dashboard.seed(states) == [{}, {"echo": "quarantined"}]  # alice's released, bob's still held
    finally:
        dashboard.control(dashboard.bearer_url, "tool_definition", tool="echo", changed=False)


def agent_page_loaded(page: Page) -> None:
    """The agent page has drawn what it read: its cards, then (last) the gateway section's limits."""
    cards = page.locator(".sb-badge").or_(page.get_by_text("No per-agent connectors yet."))
    expect(cards.first).to_be_visible()
    expect(page.get_by_text("requests per minute", exact=True)).to_be_visible()


def test_agent_page_creates_a_gateway_token_shown_once_revokes_it_and_edits_the_policy(dashboard, page):
    page.goto(f"{dashboard.url}/agent?name=bob")
    agent_page_loaded(page)  # a click before the page has drawn its data may land where it moves
    page.get_by_label("Token label").fill("e2e laptop")
    page.get_by_role("button", name="Create token").click()

    token = page.locator("pre.sb-text", has_text=re.compile(r"^swb_"))
    expect(token).to_be_visible()
    secret = token.inner_text().strip()
    listed = dashboard.seed(lambda services: services.access().list_tokens("bob"))
    assert [t.label for t in listed] == ["e2e laptop"] and secret not in repr(listed)
    page.get_by_role("button", name="I have stored it — hide the token").click()
    expect(token).to_have_count(0)
    page.reload()
    agent_page_loaded(page)
    expect(page.get_by_text("e2e laptop")).to_be_visible()
    assert secret not in page.content()  # shown once, never again

    row = page.locator(".tabulator-row", has_text="e2e laptop")
    expect(row.locator("[tabulator-field=status]")).to_have_text("active")
    expect(row.locator("[tabulator-field=expires]")).to_have_text("never")  # no days given
    row.locator(".sb-action", has_text="Revoke").click()
    expect(row.locator("[tabulator-field=status]")).to_have_text("revoked")

    page.get_by_label("Only tools with the hint").select_option("destructiveHint")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator(".tabulator-row", has_text="destructiveHint")).to_be_visible()
    screenshot(page, "agent-gateway")
    policy = dashboard.seed(lambda services: services.access().policy("bob"))
    assert [(r.effect, r.annotation) for r in policy.rules] == [("deny", "destructiveHint")]


PAGES = {
    "overview": "/",
    "connectors": "/connectors",
    "agents": "/agents",
    "agent": "/agent?name=alice",
    "tools": "/tools",
    "review": "/review?connector=demo-bearer&agent=bob",
    "playground": "/playground?connector=demo-bearer&agent=alice&tool=configure",
    "audit": "/audit",
    "health": "/health",
}


def test_every_page_reads_at_1440_and_1280_and_has_no_serious_accessibility_violation(dashboard, page):
    """Each page (the review page with a real diff on it) at both widths: no cut header or cell,
    no serious or critical axe-core violation; a full screenshot of each at 1440 px."""
    dashboard.control(dashboard.bearer_url, "tool_definition", tool="echo", changed=True)
    try:
        dashboard.seed(lambda services: services.sync("demo-bearer", agent="bob"))
        problems = {}
        for name, path in PAGES.items():
            for width in (WIDE, NARROW):
                page.set_viewport_size({"width": width, "height": 1000})
                page.goto(f"{dashboard.url}{path}")
                expect(page.locator("#main h2").first).to_be_visible()
                page.wait_for_load_state("networkidle")
                if width == WIDE:
                    screenshot(page, f"page-{name}")
                found = [f"cut: {text}" for text in page.evaluate(CUT_TEXT)] + axe_violations(page)
                if found:
                    problems[f"{path} at {width}px"] = found
        assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())
    finally:
        dashboard.control(dashboard.bearer_url, "tool_definition", tool="echo", changed=False)
