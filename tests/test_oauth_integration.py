"""The OAuth client against the real sample servers (official SDK authorization server, 127.0.0.1)."""

from __future__ import annotations

import asyncio

import pytest

from core.mcp.client import McpClient
from core.oauth import (
    ConnectorSettings,
    CredentialKey,
    MemoryOAuthStorage,
    OAuthHttp,
    OAuthProvider,
    authorize_headless,
    revoke,
)

pytestmark = pytest.mark.slow

ALICE = CredentialKey("sdk", "alice")
BOB = CredentialKey("sdk", "bob")


def provider(
    server, storage, http: OAuthHttp, key: CredentialKey = ALICE, headless: bool = True
) -> OAuthProvider:
    return OAuthProvider(storage, key, ConnectorSettings(server.url), http=http, headless=headless)


async def test_full_headless_flow(sdk_oauth_server, http: OAuthHttp) -> None:
    storage = MemoryOAuthStorage()
    async with McpClient(
        sdk_oauth_server.url, http=http.client, auth=provider(sdk_oauth_server, storage, http)
    ) as mcp:
        assert "whoami" in [tool["name"] for tool in await mcp.list_tools()]
    counters = sdk_oauth_server.counters()
    assert counters["registrations"] == 1 and counters["authorizations"] == 1
    assert all(not r["authorization"] for r in counters["requests"] if r["path"].startswith("/.well-known"))
    assert http.trace.steps()[:3] == ["prm", "as_metadata", "register"]


async def test_ten_rotating_refreshes_without_reuse(sample_server_factory, http: OAuthHttp) -> None:
    server = sample_server_factory("sdk_oauth", token_ttl=3600)
    storage = MemoryOAuthStorage()
    async with McpClient(server.url, http=http.client, auth=provider(server, storage, http)) as mcp:
        await mcp.list_tools()
        for _ in range(10):
            server.expire_tokens()  # the server rejects the access token: refresh on the 401
            await mcp.list_tools()
    counters = server.counters()
    assert (
        counters["refresh_requests"] == 10
        and counters["reuse_events"] == 0
        and counters["authorizations"] == 1
    )


async def test_fifty_concurrent_calls_with_an_expired_token_refresh_once(
    sample_server_factory, http: OAuthHttp
) -> None:
    server = sample_server_factory("sdk_oauth")
    storage = MemoryOAuthStorage()
    async with McpClient(server.url, http=http.client, auth=provider(server, storage, http)) as mcp:
        await mcp.list_tools()
        server.expire_tokens()
        await asyncio.gather(*(mcp.list_tools() for _ in range(50)))
    counters = server.counters()
    assert counters["refresh_requests"] == 1 and counters["reuse_events"] == 0


async def test_authorization_server_on_another_port(sample_server_factory, http: OAuthHttp) -> None:
    server = sample_server_factory("sdk_oauth_split")
    storage = MemoryOAuthStorage()
    async with McpClient(server.url, http=http.client, auth=provider(server, storage, http)) as mcp:
        await mcp.list_tools()
    tokens = storage.load_tokens(ALICE)
    assert tokens.issuer.rstrip("/") == server.issuer.rstrip("/") and server.origin not in tokens.issuer


async def test_two_agents_have_separate_tokens(sample_server_factory, http: OAuthHttp) -> None:
    server = sample_server_factory("sdk_oauth")
    storage = MemoryOAuthStorage()
    identities = {}
    for key in (ALICE, BOB):
        server.next_subject(key.agent_id)
        await authorize_headless(storage, key, ConnectorSettings(server.url), http=http)
        async with McpClient(
            server.url, http=http.client, auth=provider(server, storage, http, key, False)
        ) as mcp:
            result = await mcp.call_tool("whoami", {})
            identities[key.agent_id] = str(result)
    assert "alice" in identities["alice"] and "bob" in identities["bob"]
    assert storage.load_tokens(ALICE).access_token != storage.load_tokens(BOB).access_token
    assert server.counters()["registrations"] == 1


async def test_revocation_on_disconnect(sample_server_factory, http: OAuthHttp) -> None:
    server = sample_server_factory("sdk_oauth")
    storage = MemoryOAuthStorage()
    await authorize_headless(storage, ALICE, ConnectorSettings(server.url), http=http)
    revocation = await revoke(storage, ALICE, ConnectorSettings(server.url), http=http)
    assert revocation.revoked is True and revocation.issuer == server.issuer
    assert server.counters()["revocations"] >= 1
