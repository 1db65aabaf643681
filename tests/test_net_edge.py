"""The shared edge helpers of `core.net`: URL checking and redaction (`core.net.urls`), the one
translation of httpx2 failures and bounded body reads (`core.net.http`).

The failure mapping is exercised through both of its users, the MCP transport and the OAuth HTTP
layer, against real sockets on 127.0.0.1 that refuse, cut a body short or go silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest

from core.errors import (
    ConnectError,
    ConnectionLost,
    InvalidUrlError,
    RegistrationError,
    RequestTimeout,
    ResponseTooLarge,
    TransportError,
)
from core.mcp import McpClient
from core.net import NetworkPolicy, aclose_shared_clients, create_http_client, read_capped
from core.net.urls import parse_http_url, redact_url
from core.oauth import OAuthHttp
from tests.test_attack_kit import RawHttpServer, Reply, Request

LOOPBACK = NetworkPolicy.allowing("127.0.0.1")

# --- URLs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://user:pw@Mcp.Example:8443/a/b?api_key=SECRET#frag", "https://Mcp.Example:8443/a/b"),
        ("https://h/cb?code=SECRET&state=S", "https://h/cb"),
        ("https://h/path@with-at", "https://h/path@with-at"),
        ("user:pw@host/x?k=SECRET", "host/x"),  # no scheme: still no userinfo or query
        ("http://h:99999999/x?SECRET", "http://h:99999999/x"),  # unparseable port: text rules
        ("javascript:alert(1)", "javascript:alert(1)"),
        ("", ""),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_parse_http_url_accepts_and_normalizes() -> None:
    parsed = parse_http_url("HTTPS://MCP.Example:8443/mcp?x=1")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path, parsed.query) == (
        "https",
        "mcp.example",
        8443,
        "/mcp",
        "x=1",
    )
    assert parsed.origin == "https://mcp.example:8443"
    assert parse_http_url("http://[::1]:9/x").origin == "http://[::1]:9"
    assert parse_http_url("https://h/x#f", allow_fragment=True).path == "/x"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("https://h:99999999/x", "malformed"),
        ("mcp.example.com/mcp", "not_http"),
        ("ftp://h/x", "not_http"),
        ("javascript:alert(1)", "not_http"),
        ("file:///etc/passwd", "not_http"),
        ("https://user:SECRET@h/x", "credentials"),
        ("https://h/x#frag", "fragment"),
        ("https://h/x#", "fragment"),
    ],
)
def test_parse_http_url_refusals_name_the_problem(url: object, problem: str) -> None:
    with pytest.raises(InvalidUrlError) as info:
        parse_http_url(url, "the MCP server URL")
    assert info.value.problem == problem
    assert info.value.message.startswith("the MCP server URL")
    assert "SECRET" not in str(info.value)


def test_every_url_check_is_the_same_check() -> None:
    """The MCP client, the canonical resource (RFC 8707) and the OAuth endpoint rule refuse alike."""
    from core.oauth.rfc8707 import canonical_resource

    for url in ("mcp.example.com", "https://u:p@h/x", "ftp://h/x", "https://h:99999999/x"):
        with pytest.raises(InvalidUrlError):
            McpClient(url)
        with pytest.raises(InvalidUrlError):
            canonical_resource(url)
        from core.oauth._http import require_secure_url

        with pytest.raises(RegistrationError):
            require_secure_url(url, "registration_endpoint", error=RegistrationError)


# --- httpx2 failures, one map for every caller --------------------------------------------------------


async def _cut_short(request: Request) -> Reply:
    async def ten_bytes() -> AsyncIterator[bytes]:
        yield b'{"jsonrpc"'

    return Reply(200, {"content-type": "application/json", "content-length": "100"}, ten_bytes())


async def _silent(request: Request) -> Reply:
    await asyncio.sleep(30)
    return Reply(200)


@pytest.fixture
async def raw() -> AsyncIterator[RawHttpServer]:
    server = await RawHttpServer({("POST", "/cut"): _cut_short, ("POST", "/silent"): _silent}).start()
    yield server
    await server.stop()
    await aclose_shared_clients()


async def _refused_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def _mcp_error(url: str, timeout: float = 5.0) -> Exception:
    async with create_http_client(LOOPBACK) as http:
        with pytest.raises(TransportError) as info:
            await McpClient(url, http=http, era="legacy", timeout=timeout).connect()
    return info.value


async def _oauth_error(url: str, timeout: float = 5.0) -> Exception:
    async with create_http_client(LOOPBACK, timeout=httpx2.Timeout(timeout)) as http:
        with pytest.raises(TransportError) as info:
            async with OAuthHttp(http).exchange("register", "POST", url, error=RegistrationError, form=""):
                pass
    return info.value


async def test_a_refused_connection_is_a_connect_error_for_every_caller() -> None:
    url = f"http://127.0.0.1:{await _refused_port()}/mcp"
    for error in (await _mcp_error(url), await _oauth_error(url)):
        assert type(error) is ConnectError, error


async def test_a_body_cut_short_is_a_lost_connection_not_a_connect_error(raw: RawHttpServer) -> None:
    """The same httpx2 failure (RemoteProtocolError: the peer closed before the declared length) was a
    TransportError in the MCP client and a ConnectError in the OAuth layer; it is one thing."""
    url = f"{raw.origin}/cut"
    for error in (await _mcp_error(url), await _oauth_error(url)):
        assert type(error) is ConnectionLost, error
        assert not isinstance(error, ConnectError)
        assert "broke" in error.message


async def test_a_silent_server_is_a_timeout(raw: RawHttpServer) -> None:
    url = f"{raw.origin}/silent"
    assert isinstance(await _mcp_error(url, timeout=0.3), RequestTimeout)
    assert type(await _oauth_error(url, timeout=0.3)) is RequestTimeout


# --- bounded reads ----------------------------------------------------------------------------------


async def test_read_capped_refuses_declared_and_streamed_excess() -> None:
    async def declared(request: Request) -> Reply:
        return Reply(200, {"content-length": str(10 << 20)}, _forever())

    async def streamed(request: Request) -> Reply:
        return Reply(200, {}, _forever())

    async def _forever() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 65536

    server = await RawHttpServer({("GET", "/declared"): declared, ("GET", "/streamed"): streamed}).start()
    try:
        async with create_http_client(LOOPBACK) as http:
            for path, error in (("/declared", ResponseTooLarge), ("/streamed", RegistrationError)):
                async with http.stream("GET", f"{server.origin}{path}?k=SECRET") as response:
                    with pytest.raises(error) as info:
                        await read_capped(response, 1 << 20, error=error)
                assert "1048576 bytes" in str(info.value) and "SECRET" not in str(info.value)
            # within the cap, the whole body
            server.routes[("GET", "/small")] = lambda r: Reply(200, {}, b"abc")
            async with http.stream("GET", f"{server.origin}/small") as response:
                assert await read_capped(response, 3) == b"abc"
    finally:
        await server.stop()
