"""`core/oauth/id_jag.py` (SEP-990 enterprise-managed authorization) against the sample servers.

The peer is the sample authorization server with its enterprise IdP (`enterprise_users`,
sample_servers/enterprise.py): the IdP exchanges a known ID token for an ID-JAG only when the
audience is the authorization server's issuer and the resource is the MCP server; the authorization
server takes the ID-JAG once, from an authenticated client, for that resource. Faults (an IdP
answering the wrong token type) are injected on the real server with `fail_next`.
"""

from __future__ import annotations

import json
import secrets

import pytest

from core.errors import TokenError
from core.mcp.client import McpClient
from core.oauth import CredentialKey, MemoryOAuthStorage, OAuthProvider
from core.oauth.flow import ConnectorSettings, discover
from core.oauth.id_jag import EnterpriseIdentity, enterprise_token
from core.oauth.storage import ClientRegistration
from sample_servers.enterprise import IDP_CLIENT_ID, IDP_TOKEN_PATH, JWT_BEARER
from sample_servers.launch import start

CLIENT_ID = "mcp-client"
KEY = CredentialKey("enterprise", "ada")


# One pair per module: the servers below know them; each test resets the servers' counters.
ID_TOKEN = "idt-" + secrets.token_urlsafe(16)
CLIENT_SECRET = secrets.token_urlsafe(16)


@pytest.fixture
def id_token() -> str:
    return ID_TOKEN


@pytest.fixture
def client_secret() -> str:
    return CLIENT_SECRET


@pytest.fixture(scope="module", params=["sdk_oauth", "sdk_oauth_split"])
def _enterprise_servers(request):
    with start(
        request.param, machine_clients={CLIENT_ID: CLIENT_SECRET}, enterprise_users={ID_TOKEN: "ada@corp"}
    ) as server:
        yield server


@pytest.fixture
def server(_enterprise_servers):
    """The MCP server and its authorization server (same origin, or another port: the ID-JAG's
    audience must be the authorization server's issuer, not the MCP server's origin)."""
    _enterprise_servers.reset()
    return _enterprise_servers


def identity(server, id_token: str) -> EnterpriseIdentity:
    return EnterpriseIdentity(server.issuer.rstrip("/") + IDP_TOKEN_PATH, IDP_CLIENT_ID, id_token)


def registration(issuer: str, secret: str) -> ClientRegistration:
    return ClientRegistration(
        issuer=issuer,
        client_id=CLIENT_ID,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_basic",
        method="pre_registered",
    )


async def test_both_legs_give_the_enterprise_user_a_token_for_this_server(
    server, http, id_token, client_secret
) -> None:
    discovery = await discover(server.url, http=http)
    tokens = await enterprise_token(
        discovery, identity(server, id_token), registration(discovery.issuer, client_secret), http=http
    )
    assert tokens.issuer == discovery.issuer and tokens.resource == discovery.resource == server.url
    assert tokens.refresh_token is None and tokens.client_id == CLIENT_ID
    assert http.trace.steps()[-2:] == ["token_exchange", "jwt_bearer"]

    storage = MemoryOAuthStorage()
    storage.save_tokens(KEY, tokens, expected_version=None)
    provider = OAuthProvider(storage, KEY, ConnectorSettings(server.url), http=http)
    async with McpClient(server.url, http=http.client, auth=provider) as client:
        who = (await client.call_tool("whoami", {})).raw["structuredContent"]
    assert (who["subject"], who["client_id"]) == ("ada@corp", CLIENT_ID)
    counters = server.counters()
    assert counters["tokens_issued"] == {"id_jag": 1, "jwt_bearer": 1}
    assert counters["token_requests"] == {JWT_BEARER: 1} and counters["registrations"] == 0


async def test_requested_scopes_travel_through_both_legs(server, http, id_token, client_secret) -> None:
    discovery = await discover(server.url, http=http)
    tokens = await enterprise_token(
        discovery,
        identity(server, id_token),
        registration(discovery.issuer, client_secret),
        scopes=("read",),
        http=http,
    )
    assert tokens.scopes == ("read",)


async def test_an_id_token_the_idp_does_not_know_is_refused_and_never_shown(
    server, http, client_secret
) -> None:
    discovery = await discover(server.url, http=http)
    stranger = "idt-" + secrets.token_urlsafe(16)
    with pytest.raises(TokenError) as refused:
        await enterprise_token(
            discovery, identity(server, stranger), registration(discovery.issuer, client_secret), http=http
        )
    assert refused.value.error == "invalid_grant" and "identity provider refused" in str(refused.value)
    assert stranger not in str(refused.value) and stranger not in repr(identity(server, stranger))
    assert not server.counters()["token_requests"]  # nothing reached the authorization server


async def test_an_idp_answer_that_is_not_an_id_jag_is_refused(
    sample_server_factory, http, id_token, client_secret
) -> None:
    # One origin: faults are injected on the listener the control call reaches.
    server = sample_server_factory(
        "sdk_oauth", machine_clients={CLIENT_ID: client_secret}, enterprise_users={id_token: "ada@corp"}
    )
    discovery = await discover(server.url, http=http)
    wrong_type = {
        "access_token": "not-an-assertion",
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
    }
    server.fail_next(IDP_TOKEN_PATH, status=200, body=json.dumps(wrong_type))
    with pytest.raises(TokenError, match="did not issue an identity assertion grant"):
        await enterprise_token(
            discovery, identity(server, id_token), registration(discovery.issuer, client_secret), http=http
        )
    assert not server.counters()["token_requests"]


async def test_the_authorization_server_refusing_the_client_is_a_token_error(server, http, id_token) -> None:
    discovery = await discover(server.url, http=http)
    with pytest.raises(TokenError) as refused:
        await enterprise_token(
            discovery, identity(server, id_token), registration(discovery.issuer, "wrong-secret"), http=http
        )
    assert refused.value.error == "invalid_client" and "wrong-secret" not in str(refused.value)
    assert server.counters()["tokens_issued"] == {"id_jag": 1}


async def test_an_idp_endpoint_over_plain_http_elsewhere_is_refused_before_sending(http, id_token) -> None:
    from core.oauth.id_jag import request_id_jag

    remote = EnterpriseIdentity("http://idp.example/token", IDP_CLIENT_ID, id_token)
    with pytest.raises(TokenError, match="https"):
        await request_id_jag(http, remote, audience="https://as.example", resource="https://mcp.example/mcp")
    assert http.trace.steps() == []
