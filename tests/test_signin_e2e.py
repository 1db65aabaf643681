"""The front door end to end: `switchboard serve` behind each sign-in mode, headless Chromium, a real
OpenID Provider (npm `oidc-provider`, tests/fixtures via sample_servers/oidc_provider.mjs) with two
users in different groups, and the attacks of issue #13 replayed against it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import websockets
from playwright.sync_api import Browser, Page, expect

from dashboard.session_watch import SESSION_CHECK_SECONDS
from dashboard.signin_routes import SIGN_IN_ATTEMPTS
from sample_servers.launch import RunningServer, start
from tests.fixtures.dashboard import ARTIFACTS, REPO, Dashboard, dashboard_env, free_port, running_dashboard

pytestmark = pytest.mark.browser

PAGES = ("overview", "connectors", "agents", "agent", "tools", "review", "playground", "audit", "health")


def get(url: str, **kwargs) -> httpx2.Response:
    return httpx2.get(url, trust_env=False, follow_redirects=False, timeout=10.0, **kwargs)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# --- token mode (the default) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_board(tmp_path_factory) -> Iterator[Dashboard]:
    with running_dashboard(tmp_path_factory.mktemp("token"), free_port()) as board:
        yield board


def test_token_mode_prints_one_sign_in_url_and_without_it_there_is_no_session(token_board):
    printed = [line for line in token_board.log_text().splitlines() if "token=" in line]
    assert len(printed) == 1 and re.search(r"http://127\.0\.0\.1:\d+/login\?token=\S{16,}", printed[0])
    for slug in PAGES:
        answer = get(f"{token_board.url}/{slug}")
        assert answer.status_code == 302, slug
        assert answer.headers["location"].endswith(f"login?next=%2F{slug}")
        assert "token" not in answer.text and "session_id" not in answer.text
    index = get(f"{token_board.url}/")
    assert index.status_code == 302 and index.headers["location"].endswith("login?next=%2F")
    answer = get(f"{token_board.url}/login")
    assert answer.status_code == 200 and "bokeh" not in answer.text.lower()
    wrong = get(f"{token_board.url}/login", params={"token": "not-the-token-at-all"})
    assert wrong.status_code == 403
    assert "switchboard_session" not in wrong.headers.get("set-cookie", "")


def test_the_printed_url_signs_in_with_an_httponly_lax_cookie(token_board, browser: Browser):
    answer = get(token_board.signin_url)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("switchboard_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = token_board.signin_url.split("token=")[1]
    assert token not in token_board.log_text().replace(
        token_board.signin_url, ""
    )  # printed once, logged never

    page = browser.new_context().new_page()
    page.goto(token_board.signin_url)
    page.wait_for_url(f"{token_board.url}/")  # the overview
    expect(page.locator(".sb-who")).to_contain_text("Signed in as local (admin)")
    screenshot(page, "signed-in-token")
    page.get_by_role("link", name="Sign out").click()
    expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
    page.goto(f"{token_board.url}/connectors")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.context.close()


def test_signing_out_ends_the_session_everywhere_open_tabs_and_copied_cookies_too(
    token_board, browser: Browser
):
    context = browser.new_context()
    first, second = context.new_page(), context.new_page()
    first.goto(token_board.signin_url)
    first.wait_for_url(f"{token_board.url}/")
    second.goto(f"{token_board.url}/connectors")
    expect(second.locator(".sb-who")).to_contain_text("Signed in as local (admin)")
    cookie = next(c for c in context.cookies() if c["name"] == "switchboard_session")
    copied = {"Cookie": f"switchboard_session={cookie['value']}"}  # e.g. taken from the browser
    assert get(f"{token_board.url}/connectors", headers=copied).status_code == 200

    first.get_by_role("link", name="Sign out").click()
    expect(first.get_by_role("heading", name="Signed out")).to_be_visible()
    # The other tab leaves on its own, without a reload, within a few session checks.
    second.wait_for_url(re.compile(r"/login\?next=%2Fconnectors"), timeout=4000 * SESSION_CHECK_SECONDS)
    assert get(f"{token_board.url}/connectors", headers=copied).status_code == 302
    context.close()


def test_the_raw_websocket_attack_is_refused(token_board):
    """Issue #13's attack: no page hands out a session token, and a websocket with a token made up
    by the client is refused — without a session cookie, and with one but an unsigned session id."""
    made_up, url = _unsigned_token(), f"{token_board.url}/connectors/ws"
    assert _websocket_status(url, made_up, cookie=None) == 403
    signed_in = get(token_board.signin_url).headers["set-cookie"].split(";")[0]
    assert _websocket_status(url, made_up, cookie=signed_in) == "closed"  # an id not signed with the secret


def test_framing_headers_are_on_every_response(token_board):
    cookie = get(token_board.signin_url).headers["set-cookie"].split(";")[0]
    answers = [
        get(f"{token_board.url}/login"),
        get(f"{token_board.url}/connectors"),
        get(f"{token_board.url}/connectors", headers={"Cookie": cookie}),
        get(f"{token_board.url}/static/js/bokeh.min.js"),
        get(f"{token_board.url}/oauth/callback", params={"state": "x"}),
        get(f"{token_board.url}/oauth/client-metadata.json"),
        get(f"{token_board.url}/logout"),
    ]
    for answer in answers:
        assert answer.headers.get("content-security-policy", "").find("frame-ancestors 'none'") >= 0, (
            answer.url
        )
        assert answer.headers.get("x-frame-options") == "DENY", answer.url


def test_a_malformed_callback_state_is_refused_before_the_store(token_board):
    answer = get(f"{token_board.url}/oauth/callback", params={"state": "<script>", "code": "x"})
    assert answer.status_code == 400 and "flash" not in answer.headers.get("location", "")


def test_only_failed_sign_ins_count_against_the_rate_limit(token_board):
    """Signing in many times (many tabs, a team behind one address, a browser test per page) never
    locks anyone out; ten wrong tokens in a minute do, for the right one as well. Last of the
    token_board tests: it spends this address's budget."""
    token = parse_qs(urlsplit(token_board.signin_url).query)["token"][0]
    limit = SIGN_IN_ATTEMPTS.attempts
    signed_in = [get(f"{token_board.url}/login", params={"token": token}) for _ in range(limit + 2)]
    assert [answer.status_code for answer in signed_in] == [303] * len(signed_in)
    assert all("switchboard_session" in answer.headers.get("set-cookie", "") for answer in signed_in)
    # Earlier tests of this module may have spent part of the budget with wrong tokens of their own.
    wrong = [
        get(f"{token_board.url}/login", params={"token": f"wrong-{n}"}).status_code for n in range(limit + 1)
    ]
    first_refusal = wrong.index(429)
    assert first_refusal > 0 and set(wrong[:first_refusal]) == {403} and set(wrong[first_refusal:]) == {429}
    assert get(f"{token_board.url}/login", params={"token": token}).status_code == 429


# --- none mode and the refusals before listening ------------------------------------------------


def _serve_exits(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **dashboard_env(tmp_path, "http://localhost:5006"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--port", str(free_port()), *args],
        cwd=REPO,
        env=environment,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_auth_none_off_loopback_exits_before_listening(tmp_path):
    done = _serve_exits(tmp_path, "--auth", "none", "--address", "0.0.0.0")
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "--auth none serves only loopback" in done.stderr
    done = _serve_exits(tmp_path, "--address", "0.0.0.0")  # token mode, but sign-ins in clear
    assert done.returncode != 0 and "--insecure-http" in done.stderr


def test_auth_basic_without_any_operator_exits_before_listening(tmp_path):
    done = _serve_exits(tmp_path, "--auth", "basic")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "no operator may sign in yet" in done.stderr and "switchboard operator add" in done.stderr


def test_auth_none_on_loopback_serves_the_local_admin(tmp_path_factory, browser: Browser):
    with running_dashboard(tmp_path_factory.mktemp("none"), free_port(), args=["--auth", "none"]) as board:
        assert get(f"{board.url}/connectors").status_code == 200
        page = browser.new_context().new_page()
        page.goto(f"{board.url}/connectors")
        expect(page.locator(".sb-who")).to_contain_text("Signed in as local (admin)")
        expect(page.get_by_role("link", name="Sign out")).to_have_count(0)
        page.context.close()


# --- oidc: a real OpenID Provider, a viewer and an operator ---------------------------------------


@pytest.fixture(scope="module")
def oidc_board(tmp_path_factory) -> Iterator[tuple[Dashboard, RunningServer]]:
    workdir = tmp_path_factory.mktemp("oidc")
    port = free_port()
    with start("oidc", redirect_uris=[f"http://127.0.0.1:{port}/login/callback"]) as provider:
        secret_file = workdir / "oidc-client-secret"
        secret_file.write_text(provider.options["client_secret"])
        secret_file.chmod(0o600)
        env = {
            "SWITCHBOARD_OIDC_ISSUER": provider.issuer,
            "SWITCHBOARD_OIDC_CLIENT_ID": provider.info["client_id"],
            "SWITCHBOARD_OIDC_CLIENT_SECRET_FILE": str(secret_file),
            "SWITCHBOARD_OIDC_SCOPES": "openid email groups",
            "SWITCHBOARD_OIDC_OPERATORS": "switchboard-operators",
            "SWITCHBOARD_OIDC_VIEWERS": "switchboard-viewers",
        }
        with running_dashboard(workdir, port, args=["--auth", "oidc"], env=env) as board:
            yield board, provider


def oidc_sign_in(browser: Browser, board: Dashboard, user: str, path: str) -> Page:
    """Open `path`; sign in at the identity provider as `user` (its development screens)."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(board.url + path)
    page.locator("input[name=login]").fill(user)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # consent
    page.wait_for_url(re.compile(re.escape(board.url + path) + "$"))
    return page


def _connect_plain(board: Dashboard, server: RunningServer, name: str) -> None:
    async def work(services):
        await services.add_connector(name, server.url, "none")
        await services.connect(name)

    board.seed(work)


def test_a_viewer_has_no_call_button_and_a_forged_click_is_refused_and_audited(
    oidc_board, browser: Browser, plain_server
):
    board, _provider = oidc_board
    _connect_plain(board, plain_server, "plain-viewer")
    page = oidc_sign_in(browser, board, "victor", "/playground?connector=plain-viewer&tool=greet")
    expect(page.locator(".sb-who")).to_contain_text("Signed in as victor@example.com (victor) (viewer)")
    page.get_by_label("name *").fill("Mallory")
    page.get_by_label("name *").press("Tab")  # the value reaches the server on change
    expect(page.get_by_role("button", name="Call")).to_have_count(0)  # hidden from a viewer
    screenshot(page, "signed-in-viewer")

    calls = plain_server.counters().get("tools/call", 0)
    forged = page.evaluate(FORGE_CALL_CLICK)
    assert forged == "sent"
    expect(page.locator(".notyf__toast--error").last).to_contain_text("a viewer may not call tool")
    assert plain_server.counters().get("tools/call", 0) == calls  # nothing reached the server
    _wait_for_log(board, "victor@example.com (victor) (viewer) call_tool plain-viewer: refused")
    page.context.close()


def test_an_operator_calls_a_tool_and_the_audit_row_names_them(oidc_board, browser: Browser, plain_server):
    board, _provider = oidc_board
    _connect_plain(board, plain_server, "plain-operator")
    page = oidc_sign_in(browser, board, "alice", "/playground?connector=plain-operator&tool=greet")
    expect(page.locator(".sb-who")).to_contain_text("alice@example.com (alice) (operator)")
    page.get_by_label("name *").fill("Ada")
    page.get_by_role("button", name="Call").click()
    expect(page.get_by_text("Hello, Ada!", exact=True)).to_be_visible()
    page.goto(f"{board.url}/audit")
    expect(page.locator(".tabulator-row", has_text="alice@example.com (alice)").first).to_be_visible()
    rows: list = []

    async def audit(services):
        rows.extend(await services.audit(connector="plain-operator"))

    board.seed(audit)
    assert [r["operator"] for r in rows] == ["alice@example.com (alice)"]
    page.goto(f"{board.url}/connectors")
    expect(page.locator(".tabulator-row", has_text="plain-operator")).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)  # adding connectors: admins only
    page.context.close()


def test_the_overview_review_and_gateway_pages_show_each_role_only_what_it_may_do(
    oidc_board, browser: Browser
):
    board, _provider = oidc_board

    async def work(services):
        await services.add_agent("bot-roles")
        await services.add_connector("down-roles", "http://127.0.0.1:9/mcp", "none")
        return [r.ok async for r in services.sync_many(["down-roles"])]

    assert board.seed(work) == [False]  # a failed sync: the overview offers "Sync down-roles"
    fix = re.compile("^Sync down-roles$")

    viewer = oidc_sign_in(browser, board, "victor", "/")
    expect(viewer.locator("b", has_text=re.compile("^down-roles$")).first).to_be_visible()  # the item
    expect(viewer.get_by_role("button", name=fix)).to_have_count(0)  # but no fix: syncing is an operator's
    viewer.context.close()

    operator = oidc_sign_in(browser, board, "alice", "/")
    expect(operator.get_by_role("button", name=fix)).to_be_visible()
    operator.goto(f"{board.url}/agent?name=bot-roles")
    expect(operator.get_by_role("heading", name="Gateway tokens")).to_be_visible()
    expect(operator.locator(".sb-who")).to_contain_text("alice@example.com (alice) (operator)")
    for admins_only in ("Create token", "Add rule", "Save limits"):  # gateway access: admins'
        expect(operator.get_by_role("button", name=admins_only)).to_have_count(0)
    operator.goto(f"{board.url}/review")
    expect(operator.get_by_label("Tool list")).to_be_visible()
    expect(operator.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)
    screenshot(operator, "signed-in-operator-review")
    operator.context.close()


# --- basic: operators in the store, managed with the CLI -------------------------------------------


def _cli(board_env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env={**os.environ, **board_env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.fixture(scope="module")
def basic_board(tmp_path_factory) -> Iterator[tuple[Dashboard, dict[str, str]]]:
    workdir, port = tmp_path_factory.mktemp("basic"), free_port()
    env = dashboard_env(workdir, f"http://127.0.0.1:{port}")
    for name, role in (("vera", "viewer"), ("otto", "operator")):
        _cli(
            env,
            "operator",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            stdin=f"{name}'s long password\n",
        )
    with running_dashboard(workdir, port, args=["--auth", "basic"]) as board:
        yield board, env


def basic_sign_in(page: Page, name: str, password: str) -> None:
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_basic_mode_signs_operators_in_by_password_and_removing_one_ends_their_session(
    basic_board, browser: Browser
):
    board, env = basic_board
    assert get(f"{board.url}/connectors").status_code == 302
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{board.url}/connectors")
    page.wait_for_url(re.compile(r"/login\?next="))
    basic_sign_in(page, "vera", "not vera's password")
    expect(page.get_by_text("Wrong user name or password.")).to_be_visible()
    basic_sign_in(page, "vera", "vera's long password")
    page.wait_for_url(re.compile(re.escape(board.url) + r"/connectors$"))
    expect(page.locator(".sb-who")).to_contain_text("Signed in as vera (viewer)")
    expect(page.get_by_role("button", name="Sync all")).to_have_count(0)  # a viewer's page
    screenshot(page, "signed-in-basic")
    listed = json.loads(_cli(env, "--json", "operator", "list").stdout)
    assert [(o["name"], o["role"]) for o in listed] == [("otto", "operator"), ("vera", "viewer")]
    assert not any("hash" in key or "password" in key for o in listed for key in o)

    _cli(env, "operator", "remove", "vera")
    # Her session ended with her account: the open page leaves on its own, without a reload.
    page.wait_for_url(re.compile(r"/login\?next="), timeout=4000 * SESSION_CHECK_SECONDS)
    basic_sign_in(page, "vera", "vera's long password")
    expect(page.get_by_text("Wrong user name or password.")).to_be_visible()
    page.context.close()


def test_changing_an_operators_role_ends_their_session_and_the_next_one_has_the_new_role(
    basic_board, browser: Browser
):
    board, env = basic_board
    page = browser.new_context().new_page()
    page.goto(f"{board.url}/login")
    basic_sign_in(page, "otto", "otto's long password")
    page.wait_for_url(f"{board.url}/")
    expect(page.locator(".sb-who")).to_contain_text("Signed in as otto (operator)")
    _cli(
        env, "operator", "add", "otto", "--role", "admin", "--password-stdin", stdin="otto's long password\n"
    )
    page.reload()
    page.wait_for_url(re.compile(r"/login\?next="))
    basic_sign_in(page, "otto", "otto's long password")
    page.wait_for_url(f"{board.url}/")
    expect(page.locator(".sb-who")).to_contain_text("Signed in as otto (admin)")
    page.context.close()


# --- helpers --------------------------------------------------------------------------------------

# Runs in the viewer's page: the Call button exists in the document (hidden), so send the click
# event for it over the session's websocket, as a script in the page could.
FORGE_CALL_CLICK = """() => {
  const doc = Bokeh.documents[0];
  const button = [...doc.all_models].find((m) => m.type.endsWith("Button") && m.label === "Call");
  if (!button) return "no button model";
  const {ButtonClick} = Bokeh.require("core/bokeh_events");
  button.trigger_event(new ButtonClick());
  return "sent";
}"""


def _wait_for_log(board: Dashboard, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in board.log_text():
        assert time.monotonic() < deadline, board.log_tail()
        time.sleep(0.1)


def _unsigned_token() -> str:
    """A Bokeh session token a client makes up: an unsigned JWT naming its own session id."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    payload = {"session_id": "made-up-session-id", "session_expiry": int(time.time()) + 300}
    return f"{part({'alg': 'none'})}.{part(payload)}."


def _websocket_status(url: str, token: str, *, cookie: str | None) -> int | str:
    """How a websocket handshake with this Bokeh token ends: the HTTP status of a refusal, "closed"
    when the server hangs up after the handshake, "opened" when it talks."""
    # Playwright's sync API owns this thread's event loop: run ours on another thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _websocket_attempt(url, token, cookie)).result()


async def _websocket_attempt(url: str, token: str, cookie: str | None) -> int | str:
    headers = {"Cookie": cookie} if cookie else {}
    try:
        async with websockets.connect(
            url.replace("http://", "ws://"),
            subprotocols=["bokeh", token],
            additional_headers=headers,
            origin=url.split("/connectors")[0],
            open_timeout=10,
        ) as socket:
            await asyncio.wait_for(socket.recv(), timeout=10)
            return "opened"
    except websockets.InvalidStatus as refused:
        return refused.response.status_code
    except (websockets.ConnectionClosed, TimeoutError):
        return "closed"


# --- the plain `panel serve` line of the README ---------------------------------------------------


def test_the_readme_shows_the_panel_serve_line_that_switchboard_serve_runs():
    from dashboard.serve import panel_arguments

    readme = (REPO / "README.md").read_text()
    line = re.search(r"BOKEH_SECRET_KEY=.*? panel serve (.*?)\n```", readme, flags=re.DOTALL).group(1)
    shown = line.replace("\\\n", " ").split()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWITCHBOARD_PUBLIC_URL", "http://localhost:5006")
        runs = [
            os.path.relpath(a, REPO) if a.startswith(str(REPO)) else a
            for a in panel_arguments(5006, "localhost", False)
        ]
    assert shown == ["dashboard/pages/*.py", *[a for a in runs if not a.startswith("dashboard/pages/")]]


def test_a_plain_panel_serve_with_those_arguments_is_as_safe(tmp_path):
    from dashboard.serve import panel_arguments

    port, secret = free_port(), "s" * 48
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **dashboard_env(tmp_path, url),
        "SWITCHBOARD_DASHBOARD_SECRET": secret,
        "BOKEH_SECRET_KEY": secret,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWITCHBOARD_PUBLIC_URL", url)
        arguments = panel_arguments(port, "127.0.0.1", False)
    log = tmp_path / "panel.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", *arguments],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    board = Dashboard(url=url, store=tmp_path / "store.duckdb", log=log, process=process)
    try:
        deadline = time.monotonic() + 60
        while not board.signin_url and time.monotonic() < deadline:
            assert process.poll() is None, board.log_tail()
            found = re.search(r"sign in at (http\S+)", board.log_text())
            board.signin_url = found.group(1) if found else ""
            time.sleep(0.2)
        while time.monotonic() < deadline:
            try:
                answer = get(f"{url}/connectors")
                break
            except httpx2.TransportError:
                time.sleep(0.2)
        assert answer.status_code == 302 and answer.headers["x-frame-options"] == "DENY"
        cookie = get(board.signin_url).headers["set-cookie"].split(";")[0]
        assert get(f"{url}/connectors", headers={"Cookie": cookie}).status_code == 200
    finally:
        from tests.fixtures.dashboard import stop

        stop(process)
