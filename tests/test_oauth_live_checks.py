"""#16.8: the OAuth client's protections against the real sample authorization server, not fakes.

- RFC 9207 `iss` (A-25): the sample AS sends the right issuer, a wrong one, a variant that only
  normalization would accept, or none while advertising it (`iss_param`); the services accept only
  the exact issuer, and a discarded response never reaches the token endpoint.
- PKCE (A-18): the AS checks S256 itself, and counts token requests whose `code_verifier` had
  appeared in any request URL it saw (`verifiers_in_urls`): always zero.
- Step-up (A-31): `admin_action` needs scope `admin` (403 insufficient_scope from the server). The
  services raise `InsufficientScope` carrying the union of scopes and a re-authorization with them
  works; the headless client steps up by itself, at most `MAX_STEP_UPS` times; a 403 without
  insufficient_scope re-authorizes nothing.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from core.errors import AuthRequired, InsufficientScope
from core.mcp.client import McpClient
from core.oauth import (
    ConnectorSettings,
    CredentialKey,
    MemoryOAuthStorage,
    OAuthProvider,
)
from core.oauth.provider import MAX_STEP_UPS
from tests.fixtures.services import authorize_in_browser


@pytest.fixture
def oauth_server(sdk_oauth_server):
    """The module's shared sample AS, its `iss` behaviour restored after the test."""
    yield sdk_oauth_server
    sdk_oauth_server.configure(iss_param="correct")


def with_uppercase_scheme(issuer: str) -> str:
    scheme, rest = issuer.split("://", 1)
    return f"{scheme.upper()}://{rest}"


@pytest.mark.parametrize(
    ("iss_param", "accepted"),
    [
        ("correct", True),  # advertised, present, equal
        ("omit", True),  # not advertised, absent: proceed
        ("missing", False),  # advertised, absent: reject
        ("https://evil.example", False),  # another authorization server: mix-up
        ("trailing-slash", False),  # only normalization would make these equal
        ("uppercase-scheme", False),
    ],
)
async def test_rfc9207_iss_against_the_sample_authorization_server(
    service, oauth_server, iss_param, accepted
) -> None:
    sent = {
        "trailing-slash": oauth_server.issuer + "/",
        "uppercase-scheme": with_uppercase_scheme(oauth_server.issuer),
    }.get(iss_param, iss_param)
    oauth_server.configure(iss_param=sent)
    await service.add_connector("linear", oauth_server.url, "oauth")
    outcome = await authorize_in_browser(service, "linear")
    code_exchanges = oauth_server.counters()["token_requests"].get("authorization_code", 0)
    if accepted:
        assert outcome.ok, outcome.message
        assert code_exchanges == 1
        assert not (await service.call_tool("linear", "whoami", {})).is_error
    else:
        assert not outcome.ok and "mix-up" in outcome.message, outcome.message
        assert code_exchanges == 0  # the code was never sent anywhere
        assert [c for c in await service.health() if c.connector == "linear"] == []
    await service.aclose()


async def test_the_pkce_verifier_never_appears_in_a_url(service, oauth_server) -> None:
    await service.add_connector("linear", oauth_server.url, "oauth")
    url = await service.start_authorization("linear")
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["code_challenge_method"] == "S256" and "code_verifier" not in query
    async with httpx2.AsyncClient() as browser:
        answer = await browser.get(url)
    outcome = await service.complete_authorization(
        dict(parse_qsl(urlsplit(answer.headers["location"]).query))
    )
    assert outcome.ok, outcome.message  # the AS checked the verifier against the S256 challenge
    oauth_server.expire_tokens()
    assert not (await service.call_tool("linear", "whoami", {})).is_error  # a refresh, too
    counters = oauth_server.counters()
    assert counters["token_requests"] == {"authorization_code": 1, "refresh_token": 1}
    assert counters["verifiers_in_urls"] == 0
    steps = await service.auth_trace("linear")
    assert all("code_verifier" not in json.dumps(step) for step in steps)
    await service.aclose()


def whoami_scopes(result) -> set[str]:
    return set(result.result["structuredContent"]["scopes"])


async def test_step_up_through_the_services(service, oauth_server) -> None:
    await service.add_connector("linear", oauth_server.url, "oauth")
    assert (await authorize_in_browser(service, "linear")).ok
    assert whoami_scopes(await service.call_tool("linear", "whoami", {})) == {"read"}

    with pytest.raises(InsufficientScope) as refused:
        await service.call_tool("linear", "admin_action", {"action": "rotate"})
    assert set(refused.value.scopes) == {"read", "admin"}  # granted (the challenge's `read`) plus challenged
    counters = oauth_server.counters()
    assert counters["auth_failures"].get("403") == 1 and counters["authorizations"] == 1  # no loop

    # The operator authorizes again with the scopes the error names; the same call then works.
    await service.update_connector("linear", scopes=" ".join(refused.value.scopes))
    assert (await authorize_in_browser(service, "linear")).ok
    result = await service.call_tool("linear", "admin_action", {"action": "rotate"})
    assert not result.is_error
    assert whoami_scopes(await service.call_tool("linear", "whoami", {})) == {"read", "admin"}
    await service.aclose()


async def test_headless_step_up_reauthorizes_with_the_union_once(oauth_server, http) -> None:
    key = CredentialKey("linear", "bot")
    provider = OAuthProvider(
        MemoryOAuthStorage(), key, ConnectorSettings(oauth_server.url), http=http, headless=True
    )
    async with McpClient(oauth_server.url, http=http.client, auth=provider) as client:
        assert set((await client.call_tool("whoami", {})).raw["structuredContent"]["scopes"]) == {"read"}
        assert not (await client.call_tool("admin_action", {"action": "rotate"})).is_error
        assert set((await client.call_tool("whoami", {})).raw["structuredContent"]["scopes"]) == {
            "read",
            "admin",
        }
    counters = oauth_server.counters()
    assert counters["authorizations"] == 2 and counters["auth_failures"].get("403") == 1


async def test_headless_step_up_is_capped_and_a_plain_403_reauthorizes_nothing(oauth_server, http) -> None:
    key = CredentialKey("linear", "bot")
    provider = OAuthProvider(
        MemoryOAuthStorage(), key, ConnectorSettings(oauth_server.url), http=http, headless=True
    )
    challenge = f'Bearer error="insufficient_scope", scope="admin", resource_metadata="{oauth_server.resource_metadata_url}"'
    async with McpClient(oauth_server.url, http=http.client, auth=provider) as client:
        await client.list_tools()
        assert oauth_server.counters()["authorizations"] == 1

        oauth_server.fail_next("/mcp", status=403, count=1)  # forbidden, but not for a scope
        with pytest.raises(AuthRequired) as forbidden:
            await client.call_tool("whoami", {})
        assert not isinstance(forbidden.value, InsufficientScope)
        assert oauth_server.counters()["authorizations"] == 1

        # A server that refuses every time: each call steps up once (the transport retries a request
        # once), at most MAX_STEP_UPS re-authorizations per operation in all, then a final error.
        oauth_server.fail_next(
            "/mcp", status=403, count=2 * MAX_STEP_UPS + 1, headers={"www-authenticate": challenge}
        )
        for attempt in range(MAX_STEP_UPS):
            with pytest.raises(InsufficientScope, match="needs more scopes"):
                await client.call_tool("whoami", {})
            assert oauth_server.counters()["authorizations"] == 2 + attempt
        with pytest.raises(InsufficientScope, match=f"still refused after {MAX_STEP_UPS}"):
            await client.call_tool("whoami", {})
    assert oauth_server.counters()["authorizations"] == 1 + MAX_STEP_UPS
