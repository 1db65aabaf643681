"""Hostile text reaching the dashboard (S-11, S-03, tool poisoning): a server's tool names and
descriptions and an authorization server's error_description are rendered escaped, never as markup.

Checked on the HTML the dashboard's views build (no browser): the playground's description, the
tools page's definition header, the callback's flash banner, and every shared HTML helper. The tools
table itself is rendered client-side by Tabulator, whose default `plaintext` formatter escapes; that
part needs the browser suite (tests/test_dashboard_e2e.py).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

pn = pytest.importorskip("panel")

from core.net import NetworkPolicy, aclose_shared_clients
from core.services import Switchboard
from dashboard import flash, plugins
from dashboard.models import Playground, ToolInventory
from dashboard.views import components
from dashboard.views.playground import PlaygroundPage
from dashboard.views.tools import ToolsPage
from tests.test_attack_kit import ScriptedMcp

SCRIPT = "<script>alert('x')</script><img src=x onerror=alert(1)>"
HOSTILE_NAME = "<img src=x onerror=alert(2)>"


def _markup(viewable) -> str:
    """The HTML of every HTML pane inside a Panel object."""
    if isinstance(viewable, pn.pane.HTML):
        return str(viewable.object)
    objects = getattr(viewable, "objects", None) or []
    return "".join(_markup(o) for o in objects)


def _safe(markup: str) -> None:
    """No tag from the hostile text survives (its words may, as inert text)."""
    assert "<script" not in markup.lower() and "<img" not in markup.lower(), markup


@pytest.fixture
async def service(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    board = Switchboard.open(
        str(tmp_path / "s.duckdb"),
        policy=NetworkPolicy.allowing("127.0.0.1"),
        redirect_uri="http://127.0.0.1:9/oauth/callback",
    )
    yield board
    await board.aclose()
    await aclose_shared_clients()


def test_shared_helpers_escape_their_text() -> None:
    for pane in (
        components.text_block(SCRIPT),
        components.alert(SCRIPT, ok=False),
        components.heading(SCRIPT),
        components.facts_table({SCRIPT: SCRIPT}),
    ):
        _safe(_markup(pane))
        assert "&lt;script&gt;" in _markup(pane)


async def test_tool_description_and_name_from_a_server_render_escaped(service) -> None:
    server = await ScriptedMcp(
        tools=[
            {"name": "echo", "description": SCRIPT, "inputSchema": {"type": "object", "properties": {}}},
            {"name": HOSTILE_NAME, "description": SCRIPT, "inputSchema": {"type": "object"}},
        ]
    ).start()
    try:
        await service.add_connector("poisoned", server.url, "none")
        assert (await service.sync("poisoned")).ok
        playground = Playground(service=service)
        await playground.choose(connector="poisoned", agent=None)
        await playground.choose_tool("echo")
        page = PlaygroundPage(playground=playground)
        markup = _markup(page._description())
        _safe(markup)
        assert "&lt;script&gt;" in markup
        inventory = ToolInventory(service=service)
        await inventory.open("poisoned", HOSTILE_NAME)
        tools_page = ToolsPage(inventory=inventory)
        markup = _markup(tools_page._definition())
        _safe(markup)
        assert "&lt;img" in markup
    finally:
        await server.stop()


async def test_callback_error_description_reaches_the_page_escaped(service, sdk_oauth_server) -> None:
    await service.add_connector("oauth", sdk_oauth_server.url, "oauth")
    url = await service.start_authorization("oauth", return_to="/connectors")
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    arguments = {
        "state": [state.encode()],
        "error": [b"access_denied"],
        "error_description": [SCRIPT.encode()],
        "iss": [sdk_oauth_server.issuer.encode()],
        "next": [b"https://evil.example/"],
    }
    location = await plugins.finish_authorization(service, arguments)
    assert location.startswith("/connectors") and "evil.example" not in location  # no open redirect
    message = (
        await flash.take(service.store, dict(parse_qsl(urlsplit(location).query))[flash.FLASH_PARAM])
    ).message
    _safe(_markup(components.alert(message, ok=False)))
    assert "<" not in message
