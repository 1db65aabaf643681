"""Hostile input through the services (S-08, S-09, S-03, S-11): every attack ends in a typed error
(`core.errors`), memory stays bounded (tracemalloc), the process and the connection stay usable, and
nothing stored changes.

The MCP attacks use `ScriptedMcp` (tests/test_attack_kit.py), a real server on a socket, reached
through the services and the policy-enforcing client; the OAuth ones use the SDK sample AS and its
`fail_next` fault knob. The transport's own unit tests (tests/test_mcp_client_faults.py,
tests/test_sse.py) cover the decoder and client in isolation; these check the whole path.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.errors import (
    AuthError,
    ProtocolError,
    RegistrationError,
    RequestTimeout,
    ResponseTooLarge,
    SwitchboardError,
    TokenError,
    TransportError,
)
from core.net import NetworkPolicy, aclose_shared_clients
from core.oauth.storage import CredentialKey
from core.services import Switchboard
from tests.test_attack_kit import Reply, Request, ScriptedMcp

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
MiB = 1 << 20
SCRIPT = "<script>alert('x')</script><img src=x onerror=alert(1)>"


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "keys" / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    board = Switchboard.open(
        str(tmp_path / "data" / "s.duckdb"),
        policy=LOOPBACK,
        timeout=2.0,
        redirect_uri="http://127.0.0.1:9/oauth/callback",
    )
    yield board


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedMcp]:
    server = await ScriptedMcp().start()
    yield server
    await server.stop()
    await aclose_shared_clients()


# --- hostile MCP answers ---------------------------------------------------------------------------


def _sse_headers() -> dict[str, str]:
    return {"content-type": "text/event-stream"}


async def _repeat(chunk: bytes, total: int | None, pause: float = 0.0) -> AsyncIterator[bytes]:
    sent = 0
    while total is None or sent < total:
        yield chunk  # the same bytes object every time: the server side allocates nothing
        sent += len(chunk)
        if pause:
            await asyncio.sleep(pause)


def huge_line(request: Request, message: dict) -> Reply:
    """A 100 MB data line that never ends."""

    async def body() -> AsyncIterator[bytes]:
        yield b"data: "
        async for chunk in _repeat(b"x" * 65536, 100 * MiB):
            yield chunk

    return Reply(200, _sse_headers(), body())


def huge_event(request: Request, message: dict) -> Reply:
    """Lines of 64 KiB, never a blank line: one event growing past the 4 MiB event cap."""
    return Reply(200, _sse_headers(), _repeat(b"data: " + b"y" * 65530 + b"\n", 100 * MiB))


def endless_keepalive(request: Request, message: dict) -> Reply:
    """A stream that never ends and never answers: keep-alive comments forever."""
    return Reply(200, _sse_headers(), _repeat(b": ping\n\n", None, pause=0.005))


def million_events(request: Request, message: dict) -> Reply:
    """10^6 notifications and no response."""
    note = (
        b'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n\n'
    )
    return Reply(200, _sse_headers(), _repeat(note * 64, len(note) * 10**6))


def deep_json(request: Request, message: dict) -> Reply:
    body = b'{"jsonrpc":"2.0","id":%d,"result":' % message["id"] + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return Reply(200, {"content-type": "application/json"}, body)


def deep_json_in_sse(request: Request, message: dict) -> Reply:
    return Reply(200, _sse_headers(), b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n")


def invalid_utf8(request: Request, message: dict) -> Reply:
    body = b'{"jsonrpc":"2.0","id":%d,"result":{"tools":[{"name":"\xff\xfe"}]}}' % message["id"]
    return Reply(200, {"content-type": "application/json"}, body)


def invalid_utf8_sse(request: Request, message: dict) -> Reply:
    return Reply(
        200, _sse_headers(), b'data: {"jsonrpc":"2.0","id":%d,"result":{"x":"\xc3\x28"}}\n\n' % message["id"]
    )


def html_page(request: Request, message: dict) -> Reply:
    return Reply(200, {"content-type": "text/html"}, b"<html><body>" + SCRIPT.encode() + b"</body></html>")


def unknown_id(request: Request, message: dict) -> Reply:
    return Reply.json({"jsonrpc": "2.0", "id": 987654, "result": {"tools": []}})


def huge_number(request: Request, message: dict) -> Reply:
    body = b'{"jsonrpc":"2.0","id":%d,"result":{"tools":[],"n":1e100000,"m":%s}}' % (
        message["id"],
        b"9" * 5000,
    )
    return Reply(200, {"content-type": "application/json"}, body)


HOSTILE: dict[str, tuple[Callable[[Request, dict], Reply], type[SwitchboardError]]] = {
    "100 MB line": (huge_line, ResponseTooLarge),
    "event past the cap": (huge_event, ResponseTooLarge),
    "never-ending stream": (endless_keepalive, RequestTimeout),
    "10^6 events, no response": (million_events, TransportError),
    "JSON nested 100k deep": (deep_json, ProtocolError),
    "JSON nested 100k deep in SSE": (deep_json_in_sse, TransportError),
    "invalid UTF-8 JSON": (invalid_utf8, ProtocolError),
    "invalid UTF-8 in SSE": (invalid_utf8_sse, TransportError),
    "HTML instead of JSON": (html_page, ProtocolError),
    "response for an unknown id": (unknown_id, ProtocolError),
    "1e100000 and a 5000-digit integer": (huge_number, ProtocolError),
}


@pytest.mark.parametrize("attack", list(HOSTILE))
async def test_hostile_mcp_answers_are_typed_bounded_and_change_nothing(
    service, scripted, attack: str
) -> None:
    hook, expected = HOSTILE[attack]
    await service.add_connector("hostile", scripted.url, "none")
    assert (await service.sync("hostile")).ok
    before = await service.tool_list("hostile")

    scripted.hostile["tools/list"] = hook
    scripted.hostile["tools/call"] = hook
    tracemalloc.start()
    try:
        result = await service.sync("hostile")
        with pytest.raises(SwitchboardError) as info:
            await service.call_tool("hostile", "echo", {"message": "hi"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert not result.ok and result.error
    assert isinstance(info.value, expected), (type(info.value), info.value)
    assert peak < 24 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert "<script>" not in str(info.value) and "<script>" not in result.error
    # Nothing stored changed: the last good tool list is still the current one.
    assert await service.tool_list("hostile") == before
    assert (await service.drift("hostile")) == []
    # The process and the connector recover as soon as the server behaves.
    scripted.hostile.clear()
    assert (await service.call_tool("hostile", "echo", {"message": "again"})).is_error is False
    assert (await service.sync("hostile")).ok
    await service.aclose()


async def test_sse_retry_zero_and_huge_neither_hammer_nor_hang(service, scripted) -> None:
    """`retry: 0` is clamped (resumption GETs are bounded, not a tight loop); `retry: 10^14` cannot
    park the call beyond its timeout."""
    gets = 0

    def no_answer(retry: int) -> Callable[[Request, dict], Reply]:
        return lambda request, message: Reply(200, _sse_headers(), b"id: e1\nretry: %d\ndata: \n\n" % retry)

    def resume(request: Request) -> Reply:
        nonlocal gets
        gets += 1
        return Reply(200, _sse_headers(), b"retry: 0\n\n")  # resumes, makes no progress, ends again

    scripted.server.routes[("GET", "/mcp")] = resume
    await service.add_connector("retry", scripted.url, "none")
    assert (await service.sync("retry")).ok
    scripted.hostile["tools/call"] = no_answer(0)
    with pytest.raises(TransportError):
        await service.call_tool("retry", "echo", {"message": "x"})
    assert 1 <= gets <= 6
    gets = 0
    scripted.hostile["tools/call"] = no_answer(99999999999999)
    with pytest.raises(RequestTimeout):
        await service.call_tool("retry", "echo", {"message": "x"})
    assert gets == 0  # the clamped 60 s delay outlasts the 2 s call timeout: no resumption at all
    scripted.hostile.clear()
    assert not (await service.call_tool("retry", "echo", {"message": "ok"})).is_error
    await service.aclose()


@pytest.mark.parametrize(
    "tools",
    [
        [{"description": "a tool without a name"}],
        [{"name": 5}],
        [{"name": ""}],
    ],
    ids=["missing", "number", "empty"],
)
async def test_invalid_tool_lists_are_a_recorded_sync_failure(service, scripted, tools) -> None:
    """A server's invalid tool list is the server's fault: the sync fails with a typed error that is
    recorded on the connector (not raised as if the operator had misconfigured something), and the
    previous tool list stays current."""
    await service.add_connector("bad", scripted.url, "none")
    assert (await service.sync("bad")).ok
    before = await service.tool_list("bad")
    scripted.tools = tools
    result = await service.sync("bad")
    assert not result.ok and "name" in result.error
    assert (await service.get_connector("bad")).status == "error"
    assert await service.tool_list("bad") == before
    await service.aclose()


# --- a listing bounded as a whole (issue 16, point 3) ----------------------------------------------------


def endless_pages(tools_per_page: int, description_bytes: int = 0, pause: float = 0.0):
    """`tools/list` pages that never end: fresh tools and a fresh cursor on every page."""
    pages = {"n": 0}

    async def page(request: Request, message: dict) -> Reply:
        pages["n"] += 1
        if pause:
            await asyncio.sleep(pause)
        first = pages["n"] * tools_per_page
        tools = [
            {
                "name": f"t{first + i}",
                "description": "d" * description_bytes,
                "inputSchema": {"type": "object"},
            }
            for i in range(tools_per_page)
        ]
        result = {"tools": tools, "nextCursor": f"c{pages['n']}"}
        return Reply.json({"jsonrpc": "2.0", "id": message["id"], "result": result})

    return page, pages


LISTING_CAPS = {
    # cap name: (setting, value, page hook arguments, most pages a bounded listing may fetch)
    "total bytes": ("SWITCHBOARD_LISTING_MAX_BYTES", "1048576", (4, 64 * 1024, 0.0), 6),
    "tool count": ("SWITCHBOARD_LISTING_MAX_ITEMS", "250", (100, 0, 0.0), 3),
    "deadline": ("SWITCHBOARD_LISTING_DEADLINE", "1", (1, 0, 0.2), 12),
}


@pytest.mark.parametrize("cap", list(LISTING_CAPS))
async def test_a_sync_is_bounded_as_a_whole(service, scripted, monkeypatch, cap: str) -> None:
    """Before the caps a server with endless pages (fresh cursors, under the per-response cap) was
    listed until the 1,000-page limit, keeping every page: ~16 GiB at 16 MiB a page. Now the sync
    stops at the first cap and says which setting raises it; nothing stored changes."""
    setting, value, hook_args, most_pages = LISTING_CAPS[cap]
    await service.add_connector("hostile", scripted.url, "none")
    assert (await service.sync("hostile")).ok
    before = await service.tool_list("hostile")
    monkeypatch.setenv(setting, value)
    hook, pages = endless_pages(*hook_args)
    scripted.hostile["tools/list"] = hook
    await service.aclose()  # the next sync builds a new client, which reads the caps
    started = time.monotonic()
    result = await service.sync("hostile")
    assert not result.ok and setting in result.error, result.error
    assert pages["n"] <= most_pages, pages["n"]
    assert time.monotonic() - started < 10
    assert await service.tool_list("hostile") == before
    await service.aclose()


async def test_script_in_tool_descriptions_is_stored_as_data(service, plain_server) -> None:
    """Tool descriptions are untrusted text: stored verbatim (the dashboard escapes on output, see
    tests/test_attack_dashboard.py), never interpreted or executed, and drift reports the change."""
    await service.add_connector("plain", plain_server.url, "none")
    assert (await service.sync("plain")).ok
    plain_server.set_tool_description("echo", SCRIPT)
    assert (await service.sync("plain")).ok
    rows = {r["name"]: r for r in await service.tool_list("plain")}
    assert rows["echo"]["description"] == SCRIPT
    assert {"name": "echo", "change": "changed", "fields": ["description"]} in await service.drift("plain")
    await service.aclose()


# --- hostile OAuth answers (S-09, S-03) ---------------------------------------------------------------------


async def _authorization_params(
    service: Switchboard, connector: str, agent: str | None = None
) -> dict[str, str]:
    url = await service.start_authorization(connector, agent)
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code in (302, 303, 307), answer.status_code
    return dict(parse_qsl(urlsplit(answer.headers["location"]).query))


TOKEN_GARBAGE = {
    "HTML login page": {
        "status": 200,
        "body": "<html><title>Login</title>" + SCRIPT + "</html>",
        "headers": {"content-type": "text/html"},
    },
    "JSON that is not an object": {
        "status": 200,
        "body": '["access_token"]',
        "headers": {"content-type": "application/json"},
    },
    "302 to a login page": {"status": 302, "body": "", "headers": {"location": "https://login.example/"}},
    "huge body": {
        "status": 200,
        "body": '{"access_token":"' + "a" * (1 << 20) + '","token_type":"Bearer"}',
        "headers": {"content-type": "application/json"},
    },
    "access_token and error": {
        "status": 200,
        "body": '{"access_token":"x","token_type":"Bearer","error":"server_error"}',
        "headers": {"content-type": "application/json"},
    },
    "error with script": {
        "status": 400,
        "body": json.dumps({"error": "invalid_grant", "error_description": SCRIPT}),
        "headers": {"content-type": "application/json"},
    },
}


@pytest.mark.parametrize("answer", list(TOKEN_GARBAGE))
async def test_token_endpoint_garbage_fails_closed(service, sdk_oauth_server, answer: str) -> None:
    await service.add_connector("oauth", sdk_oauth_server.url, "oauth")
    params = await _authorization_params(service, "oauth")
    sdk_oauth_server.fail_next("/token", **TOKEN_GARBAGE[answer])
    outcome = await service.complete_authorization(params)
    assert not outcome.ok
    assert "<" not in outcome.message and "a" * 100 not in outcome.message
    assert await service.health() == []  # nothing saved
    replay = await service.complete_authorization(params)  # the state was used up
    assert not replay.ok and "start the authorization again" in replay.message
    assert sdk_oauth_server.counters()["token_requests"].get("authorization_code", 0) == 1
    await service.aclose()


async def test_registration_endpoint_html_fails_closed(service, sdk_oauth_server) -> None:
    await service.add_connector("oauth", sdk_oauth_server.url, "oauth")
    sdk_oauth_server.fail_next(
        "/register", status=200, body="<html>" + SCRIPT + "</html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(RegistrationError) as info:
        await service.connect("oauth")
    assert "<" not in str(info.value)
    conn = await service.context.connector("oauth")
    assert service.context.oauth_storage.get_client(sdk_oauth_server.issuer, service.redirect_uri) is None
    assert conn.status == "error"
    # the next attempt registers normally
    assert (await service.connect("oauth")).status == "needs_auth"
    assert sdk_oauth_server.counters()["registrations"] == 1
    await service.aclose()


async def test_refresh_answered_with_html_changes_nothing_stored(service, sdk_oauth_server) -> None:
    await service.add_connector("oauth", sdk_oauth_server.url, "oauth")
    assert (await service.complete_authorization(await _authorization_params(service, "oauth"))).ok
    key = CredentialKey((await service.context.connector("oauth")).id, "")
    stored = service.context.oauth_storage.load_tokens(key)
    sdk_oauth_server.expire_tokens()
    sdk_oauth_server.fail_next(
        "/token", status=200, body="<html>" + SCRIPT + "</html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(AuthError) as info:
        await service.call_tool("oauth", "whoami", {})
    assert isinstance(info.value, TokenError) and "<" not in str(info.value)
    after = service.context.oauth_storage.load_tokens(key)
    assert (after.version, after.refresh_token, after.access_token) == (
        stored.version,
        stored.refresh_token,
        stored.access_token,
    )
    assert service.context.oauth_storage.needs_reauth(key) is None
    # The refresh token was never presented, so it still works.
    assert not (await service.call_tool("oauth", "whoami", {})).is_error
    counters = sdk_oauth_server.counters()
    assert counters["refresh_requests"] == 2 and counters["reuse_events"] == 0
    await service.aclose()


async def test_callback_with_code_and_error_is_discarded(service, sdk_oauth_server) -> None:
    await service.add_connector("oauth", sdk_oauth_server.url, "oauth")
    params = await _authorization_params(service, "oauth")
    outcome = await service.complete_authorization(
        {**params, "error": "access_denied", "error_description": SCRIPT}
    )
    assert not outcome.ok and "<" not in outcome.message and ">" not in outcome.message
    assert sdk_oauth_server.counters()["token_requests"] == {}
    assert await service.health() == []
    replay = await service.complete_authorization(params)  # the code alone, now: the state is gone
    assert not replay.ok
    assert sdk_oauth_server.counters()["token_requests"] == {}
    await service.aclose()


async def test_error_description_with_script_is_neutralised_even_when_verified(
    service, sdk_oauth_server
) -> None:
    """With a matching `iss` the AS's error_description is shown, but never as markup."""
    await service.add_connector("oauth", sdk_oauth_server.url, "oauth")
    url = await service.start_authorization("oauth")
    state = dict(parse_qsl(urlsplit(url).query))["state"]
    outcome = await service.complete_authorization(
        {
            "state": state,
            "error": "access_denied",
            "error_description": SCRIPT + "\x1b[31m\r\nforged line",
            "iss": sdk_oauth_server.issuer,
        }
    )
    assert not outcome.ok and "access_denied" in outcome.message
    assert not any(c in outcome.message for c in "<>\x1b\r\n")
    trace = await service.auth_trace("oauth")
    assert all("<" not in json.dumps(step) for step in trace)
    await service.aclose()
