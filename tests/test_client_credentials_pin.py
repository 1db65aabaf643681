"""#16.2: an operator's client secret goes only to the authorization server it was first sent to.

Against the real sample authorization server (`sdk_oauth` with a machine client allowed the
client_credentials grant) and a second one that the server later names in its protected-resource
metadata: the secret must never reach the second. Before the fix only `connect` pinned the
authorization server; a `sync` or `call` first (as the README's CLI sequence allows) left it unpinned,
so every later token request re-discovered and sent the secret wherever the server pointed.
"""

from __future__ import annotations

import secrets

import pytest

from core.errors import RegistrationError
from core.mcp.client import McpClient
from core.net import NetworkPolicy, create_http_client
from core.oauth import (
    ClientCredentials,
    ConnectorSettings,
    CredentialKey,
    MemoryOAuthStorage,
    OAuthHttp,
    OAuthProvider,
)
from core.services import Switchboard

LOOPBACK = NetworkPolicy.allowing("127.0.0.1", "localhost")
CLIENT_ID = "agent-1"


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture
def servers(sample_server_factory, secret):
    """(the MCP server with its own AS that knows the machine client, another AS it names later)"""
    return sample_server_factory("sdk_oauth", machine_clients={CLIENT_ID: secret}), sample_server_factory(
        "sdk_oauth"
    )


@pytest.fixture
def service(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_KEY_FILE", str(tmp_path / "store.key"))
    monkeypatch.delenv("SWITCHBOARD_KEY", raising=False)
    return Switchboard.open(str(tmp_path / "switchboard.duckdb"), policy=LOOPBACK)


def nothing_reached(hostile) -> bool:
    """No token request and no request with credentials at the other authorization server."""
    seen = hostile.counters()
    return not seen["token_requests"] and seen["requests_with_authorization"] == 0


@pytest.mark.parametrize("first_use", ["sync", "call"])
async def test_first_use_pins_the_authorization_server_for_every_later_process(
    service, servers, secret, first_use
) -> None:
    server, hostile = servers
    await service.add_connector(
        "cc", server.url, "client_credentials", client_id=CLIENT_ID, client_secret=secret
    )
    if first_use == "sync":
        assert (await service.sync("cc")).ok
    else:
        assert "agent-1" in (await service.call_tool("cc", "whoami", {})).text()
    assert (await service.get_connector("cc")).issuer == server.issuer  # pinned on first use
    assert server.counters()["tokens_issued"] == {"client_credentials": 1}
    await service.aclose()

    # The server now names another authorization server, and its tokens expired: a new process (no
    # memory of the first) must get a new token, and must not send the secret there.
    server.configure(authorization_servers=[hostile.issuer])
    server.expire_tokens()
    later = Switchboard(service.store, policy=LOOPBACK)
    result = await later.sync("cc")
    assert not result.ok and "its secret is not sent there" in (result.error or "")
    assert nothing_reached(hostile), hostile.counters()
    await later.aclose()

    # Back at the pinned authorization server, it works again.
    server.configure(authorization_servers=None)
    assert (await later.sync("cc")).ok
    await later.aclose()


async def test_connect_pins_and_the_pin_holds(service, servers, secret) -> None:
    server, hostile = servers
    await service.add_connector(
        "cc", server.url, "client_credentials", client_id=CLIENT_ID, client_secret=secret
    )
    assert (await service.connect("cc")).status == "connected"
    assert (await service.get_connector("cc")).issuer == server.issuer
    server.configure(authorization_servers=[hostile.issuer])
    server.expire_tokens()
    result = await service.sync("cc")
    assert not result.ok and "its secret is not sent there" in (result.error or "")
    assert nothing_reached(hostile), hostile.counters()
    await service.aclose()


async def test_a_provider_without_a_stored_pin_pins_the_first_issuer_in_memory(servers, secret) -> None:
    """The library path (notebooks, conformance): no store, no `pin_issuer`; the provider itself
    remembers the first authorization server for as long as it lives."""
    server, hostile = servers
    settings = ConnectorSettings(server_url=server.url)
    async with create_http_client(LOOPBACK) as http:
        provider = OAuthProvider(
            MemoryOAuthStorage(),
            CredentialKey("cc"),
            settings,
            http=OAuthHttp(http),
            client_credentials=ClientCredentials(CLIENT_ID, client_secret=secret),
        )
        async with McpClient(server.url, http=http, auth=provider) as client:
            assert await client.list_tools()
            server.configure(authorization_servers=[hostile.issuer])
            server.expire_tokens()
            with pytest.raises(RegistrationError, match="not sent there"):
                await client.list_tools()
    assert nothing_reached(hostile), hostile.counters()
